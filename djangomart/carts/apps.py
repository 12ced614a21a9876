from django.apps import AppConfig


class CartsConfig(AppConfig):
    name = "djangomart.carts"
    verbose_name = "Carts"
