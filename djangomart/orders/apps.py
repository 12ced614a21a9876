from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "djangomart.orders"
    label = "orders"
    verbose_name = "Orders"
