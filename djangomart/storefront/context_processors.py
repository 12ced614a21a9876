from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from djangomart.storefront.brand import brand_current


def brand(request: HttpRequest) -> dict[str, Any]:
    """`brand` in every template, read only by the templates that use it."""
    return {"brand": SimpleLazyObject(brand_current)}
