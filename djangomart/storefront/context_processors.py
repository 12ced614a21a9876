from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from djangomart.storefront.brand import brand_current
from djangomart.storefront.cart_session import cart_units


def brand(request: HttpRequest) -> dict[str, Any]:
    """`brand` in every template, read only by the templates that use it."""
    return {"brand": SimpleLazyObject(brand_current)}


def cart(request: HttpRequest) -> dict[str, Any]:
    """`cart_units` for the header: read once, and only by a page that shows it. An
    error page rendered before the session and auth middleware ran (a refused Host
    header) has no cart to count."""
    if not (hasattr(request, "session") and hasattr(request, "user")):
        return {"cart_units": 0}
    return {"cart_units": SimpleLazyObject(lambda: cart_units(request))}
