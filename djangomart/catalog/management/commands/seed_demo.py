from typing import Any

from django.core.management.base import BaseCommand

from djangomart.catalog.demo import demo_catalog_seed


class Command(BaseCommand):
    help = "Load the demo catalog. Idempotent: rows that exist are left untouched."

    def handle(self, *args: Any, **options: Any) -> None:
        created = demo_catalog_seed()
        self.stdout.write(f"Demo catalog ready ({created} rows created).")
