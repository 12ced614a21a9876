from django.apps import AppConfig


class NotifyConfig(AppConfig):
    name = "djangomart.notify"
    label = "notify"
    verbose_name = "Outbox"
