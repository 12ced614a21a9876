"""The storefront's cached catalog fragments are dropped when staff change what they
show: any save or delete of a category, product or variant (catalog_version_bump)."""

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from djangomart.catalog.models import Category, Product, Variant
from djangomart.storefront.catalog_cache import catalog_version_bump


@receiver([post_save, post_delete], sender=Category)
@receiver([post_save, post_delete], sender=Product)
@receiver([post_save, post_delete], sender=Variant)
def _catalog_changed(**kwargs: Any) -> None:
    # After the commit: a page rendered in between must not cache the old rows anew.
    transaction.on_commit(catalog_version_bump)
