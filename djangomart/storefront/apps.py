from django.apps import AppConfig


class StorefrontConfig(AppConfig):
    name = "djangomart.storefront"
    label = "storefront"
    verbose_name = "Storefront"

    def ready(self) -> None:
        from djangomart.storefront import signals  # noqa: F401 (connects the receivers)
