from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "djangomart.core"
    label = "core"
    verbose_name = "Core"
