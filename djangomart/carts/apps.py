from django.apps import AppConfig


class CartsConfig(AppConfig):
    name = "djangomart.carts"
    verbose_name = "Carts"

    def ready(self) -> None:
        from allauth.account.signals import user_logged_in

        from djangomart.carts.signals import on_user_logged_in

        # A stable uid: connected once even if ready() runs again (tests, reloads).
        user_logged_in.connect(on_user_logged_in, dispatch_uid="carts_merge_at_login")
