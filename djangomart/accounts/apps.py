from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "djangomart.accounts"
    label = "accounts"
    verbose_name = "Accounts"
