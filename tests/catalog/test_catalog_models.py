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
        ("on_hand", -1, "variant_(on_hand|available)_gte_0"),  # both hold
        ("reserved", -1, "variant_reserved_gte_0"),
        ("reserved", 4, "variant_available_gte_0"),
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
        Variant.objects.filter(pk=variant.pk).update(on_hand=F("on_hand") - 4)
    variant.refresh_from_db()
    assert variant.on_hand == 3


def test_more_cannot_be_reserved_than_is_on_hand_even_by_a_relative_update(
    variant: Variant,
) -> None:
    from django.db.models import F

    with pytest.raises(IntegrityError, match="variant_available_gte_0"), transaction.atomic():
        Variant.objects.filter(pk=variant.pk).update(reserved=F("reserved") + 4)
    variant.refresh_from_db()
    assert (variant.on_hand, variant.reserved, variant.available) == (3, 0, 3)


def test_saving_a_variant_read_before_a_checkout_does_not_write_its_stock_back(
    variant: Variant,
) -> None:
    stale = Variant.objects.get(pk=variant.pk)  # a form opened by staff: 3 on hand
    Variant.objects.filter(pk=variant.pk).update(reserved=2)  # a checkout reserves 2
    Variant.objects.filter(pk=variant.pk).update(on_hand=5)  # a restock
    stale.price = 1200
    stale.save()
    variant.refresh_from_db()
    assert (variant.price, variant.on_hand, variant.reserved) == (1200, 5, 2)


def test_sku_is_unique(variant: Variant) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Variant.objects.create(product=variant.product, sku="THING-1", price=1)


def test_a_category_cannot_be_its_own_parent(db: None) -> None:
    category = Category.objects.create(name="Loop", slug="loop")
    with pytest.raises(IntegrityError, match="category_not_own_parent"), transaction.atomic():
        Category.objects.filter(pk=category.pk).update(parent=category)
