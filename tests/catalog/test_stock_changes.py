"""`stock_changes`, the many-variant restock the demo seed uses: each variant's on_hand
moves by its own delta with one ledger row each, and one refused change changes nothing."""

import pytest
from django.db import transaction

from djangomart.catalog.models import StockMovement, Variant
from djangomart.catalog.services import StockChangeRefused, stock_changes
from tests.conftest import make_product

pytestmark = pytest.mark.django_db

RESTOCK = StockMovement.Reason.RESTOCK


def stock(*skus: str) -> list[tuple[str, int, int]]:
    rows = Variant.objects.filter(sku__in=skus).order_by("sku")
    return list(rows.values_list("sku", "on_hand", "reserved"))


def test_each_variant_moves_by_its_own_delta_with_its_own_ledger_row() -> None:
    product = make_product("thing", variants=[("T-1", 100, 2), ("T-2", 100, 0), ("T-3", 100, 5)])
    ids = dict(product.variants.values_list("sku", "pk"))
    with transaction.atomic():
        movements = stock_changes({ids["T-1"]: 3, ids["T-2"]: 7}, reason=RESTOCK, note="count")
    assert stock("T-1", "T-2", "T-3") == [("T-1", 5, 0), ("T-2", 7, 0), ("T-3", 5, 0)]
    assert sorted((m.variant.sku, m.delta, m.on_hand_after, m.note) for m in movements) == [
        ("T-1", 3, 5, "count"),
        ("T-2", 7, 7, "count"),
    ]
    ledger = StockMovement.objects.filter(variant__product=product).order_by("variant__sku", "pk")
    assert list(ledger.values_list("variant__sku", "delta", "on_hand_after")) == [
        ("T-1", 2, 2),
        ("T-1", 3, 5),
        ("T-2", 7, 7),
        ("T-3", 5, 5),
    ]


@pytest.mark.parametrize(("delta", "reason"), [(-3, RESTOCK), (0, RESTOCK), (1, "sale")])
def test_one_refused_change_changes_no_variant(delta: int, reason: str) -> None:
    product = make_product("thing", variants=[("T-1", 100, 2), ("T-2", 100, 2)])
    ids = dict(product.variants.values_list("sku", "pk"))
    ledger_before = StockMovement.objects.count()
    with pytest.raises(StockChangeRefused), transaction.atomic():
        stock_changes({ids["T-1"]: 1, ids["T-2"]: delta}, reason=reason)
    assert stock("T-1", "T-2") == [("T-1", 2, 0), ("T-2", 2, 0)]
    assert StockMovement.objects.count() == ledger_before
