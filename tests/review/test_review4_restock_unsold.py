"""A refund's `restock` puts units back on the shelf that the order never sold: an order
that expired (its reservation dropped, nothing sold) and whose late payment was held
(LATE_PAYMENT_POLICY=hold) can be refunded by staff, and the refund's restock adds
`on_hand` for units that never left it: phantom stock the catalog then sells."""

import contextlib
from typing import Any

import pytest
from django.test import Client

from djangomart.catalog.models import StockMovement, Variant
from djangomart.orders.models import Order
from djangomart.payments import refund_requests
from tests.payments.builders import DEMO_SKU, new_intent_id, order_build
from tests.payments.test_late_payment_policy import (
    expire_here,
    process_received,
    report_session_event,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("sandbox", "stripe_settings", "demo_catalog", "queued_jobs_removed"),
]


def test_restock_with_a_refund_of_an_order_that_never_sold_adds_phantom_stock(
    client: Client, settings: Any
) -> None:
    settings.LATE_PAYMENT_POLICY = "hold"
    on_hand_before = Variant.objects.get(sku=DEMO_SKU).on_hand
    order = order_build(quantity=2)
    expire_here(client, order)  # reservation dropped; nothing was ever sold
    report_session_event(client, order, new_intent_id())()  # the late payment: held
    process_received()
    order.refresh_from_db()
    assert order.status == Order.Status.EXPIRED
    assert Variant.objects.get(sku=DEMO_SKU).on_hand == on_hand_before

    # A refusal is the right answer; Stripe's own answer does not matter here.
    with contextlib.suppress(Exception):
        refund_requests.refund_request(
            order_id=order.pk,
            amount=None,
            reason=None,
            note="late payment refunded",
            user=None,
            idempotency_key="review4-restock-unsold",
            restock=[(DEMO_SKU, 2)],
        )
    # The order sold nothing: no return may put units back on the shelf.
    assert StockMovement.objects.filter(order=order, reason="return").count() == 0
    assert Variant.objects.get(sku=DEMO_SKU).on_hand == on_hand_before
