"""The storefront's cached catalog fragments are dropped when staff change what they
show: any save or delete of a category, product or variant (catalog_version_bump).
And a guest's cart follows them into their account when they log in."""

from typing import Any

from allauth.account.signals import user_logged_in
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest

from djangomart.catalog.models import Category, Product, Variant
from djangomart.storefront.cart_session import guest_cart_merge_at_login
from djangomart.storefront.catalog_cache import catalog_version_bump


@receiver([post_save, post_delete], sender=Category)
@receiver([post_save, post_delete], sender=Product)
@receiver([post_save, post_delete], sender=Variant)
def _catalog_changed(**kwargs: Any) -> None:
    # After the commit: a page rendered in between must not cache the old rows anew.
    transaction.on_commit(catalog_version_bump)


# allauth's signal, not Django's: it is also sent by the login that follows an email
# verification, and never by the admin's login.
@receiver(user_logged_in, dispatch_uid="storefront_guest_cart_merge")
def _logged_in(request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    guest_cart_merge_at_login(request, user)
