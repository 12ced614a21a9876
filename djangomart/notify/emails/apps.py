from django.apps import AppConfig


class NotifyEmailsConfig(AppConfig):
    name = "djangomart.notify.emails"
    label = "notify_emails"
    verbose_name = "Outbox: emails"
