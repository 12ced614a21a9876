from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "djangomart.catalog"
    label = "catalog"
    verbose_name = "Catalog"
