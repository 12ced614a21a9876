from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "djangomart.payments"
    label = "payments"
    verbose_name = "Payments"
