from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    name = "djangomart.backoffice"
    label = "backoffice"
    verbose_name = "Back office"
