"""The database itself refuses invalid catalog rows, whatever code writes them."""

import pytest
from django.db import IntegrityError, transaction

from djangomart.catalog.models import Category, Variant
from tests.conftest import make_product

pytestmark = pytest.mark.django_db


@pytest.fixture
def variant() -> Variant:
    return make_product("thing", variants=[("THING-1", 1000, 3)]).variants.get()


@pytest.mark.parametrize(
    ("field", "value", "constraint"),
    [
        ("stock_on_hand", -1, "variant_stock_on_hand_gte_0"),
        ("price", -1, "variant_price_gte_0"),
        ("currency", "USD", "variant_currency_iso_lower"),
        ("currency", "us", "variant_currency_iso_lower"),
    ],
)
def test_database_refuses_invalid_variant_values(
    variant: Variant, field: str, value: object, constraint: str
) -> None:
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        Variant.objects.filter(pk=variant.pk).update(**{field: value})


def test_stock_cannot_be_decremented_below_zero_even_by_a_relative_update(variant: Variant) -> None:
    from django.db.models import F

    with pytest.raises(IntegrityError), transaction.atomic():
        Variant.objects.filter(pk=variant.pk).update(stock_on_hand=F("stock_on_hand") - 4)
    variant.refresh_from_db()
    assert variant.stock_on_hand == 3


def test_sku_is_unique(variant: Variant) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Variant.objects.create(product=variant.product, sku="THING-1", price=1)


def test_a_category_cannot_be_its_own_parent(db: None) -> None:
    category = Category.objects.create(name="Loop", slug="loop")
    with pytest.raises(IntegrityError, match="category_not_own_parent"), transaction.atomic():
        Category.objects.filter(pk=category.pk).update(parent=category)
