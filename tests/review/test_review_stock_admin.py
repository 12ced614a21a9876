"""Review of issue 7, section 1: staff change on_hand through a recorded stock change.
A relative change has a hazard the old absolute field did not: the same form sent
twice (a double-click on Save, a browser resubmit) records it twice."""

import pytest
from django.test import Client

from djangomart.catalog.models import StockMovement, Variant
from tests.conftest import make_product

pytestmark = pytest.mark.django_db


def _variant_form(variant: Variant, **changes: str) -> dict[str, str]:
    data = {
        "product": str(variant.product_id),
        "sku": variant.sku,
        "label": variant.label,
        "position": str(variant.position),
        "price": str(variant.price),
        "currency": variant.currency,
        "active": "on",
        "stock_change": "",
        "stock_reason": "restock",
        "stock_note": "",
        "_save": "Save",
    }
    data.update(changes)
    return data


def test_the_same_stock_change_form_sent_twice_is_recorded_once(staff_client: Client) -> None:
    """Staff count a delivery of 12 and press Save; the browser sends the form twice.
    Both POSTs carry the page's state as it was read (on hand 10), so the second is a
    resubmission of the same change, not a second delivery: on hand must be 22, with
    one movement (or the second POST refused as stale)."""
    make_product("tee", variants=[("TEE-M", 2000, 10)])
    variant = Variant.objects.get(sku="TEE-M")
    url = f"/admin/catalog/variant/{variant.pk}/change/"
    form = _variant_form(variant, stock_change="12", stock_note="delivery 4711")

    first = staff_client.post(url, form)
    second = staff_client.post(url, form)

    assert first.status_code == 302
    variant.refresh_from_db()
    restocks = StockMovement.objects.filter(variant=variant, note="delivery 4711")
    assert (variant.on_hand, restocks.count()) == (22, 1), (
        f"on hand {variant.on_hand}, {restocks.count()} movements; second POST answered "
        f"{second.status_code}"
    )
