"""What the storefront caches is dropped when staff change what it shows: the brand on
a save of its row, the catalog fragments on any save or delete of a category, product
or variant (catalog_version_bump)."""

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from djangomart.catalog.models import Category, Product, Variant
from djangomart.storefront.brand import brand_forget
from djangomart.storefront.catalog_cache import catalog_version_bump
from djangomart.storefront.models import BrandSettings


@receiver(post_save, sender=BrandSettings)
def _brand_saved(**kwargs: Any) -> None:
    transaction.on_commit(brand_forget)


@receiver([post_save, post_delete], sender=Category)
@receiver([post_save, post_delete], sender=Product)
@receiver([post_save, post_delete], sender=Variant)
def _catalog_changed(**kwargs: Any) -> None:
    # After the commit: a page rendered in between must not cache the old rows anew.
    transaction.on_commit(catalog_version_bump)
