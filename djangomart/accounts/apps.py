from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "djangomart.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from allauth.account.signals import email_confirmed

        from djangomart.accounts.guest_orders import on_email_confirmed

        # A stable uid: connected once even if ready() runs again (tests, reloads).
        email_confirmed.connect(on_email_confirmed, dispatch_uid="guest_orders_attach")
