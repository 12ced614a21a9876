from django.apps import AppConfig


class FulfillmentConfig(AppConfig):
    name = "djangomart.fulfillment"
    label = "fulfillment"
    verbose_name = "Fulfillment"
