from django.apps import AppConfig


class NotifyWebhooksConfig(AppConfig):
    name = "djangomart.notify.webhooks"
    label = "notify_webhooks"
    verbose_name = "Outbox: webhooks"
