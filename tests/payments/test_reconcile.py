"""Reconciliation: pending orders whose session should have ended are brought in line
with Stripe (the webhook never came), or expired when they never got a session."""

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from djangomart.catalog.demo import demo_catalog_seed
from djangomart.catalog.models import Variant
from djangomart.orders.models import Order
from djangomart.payments.reconcile import GRACE, orders_reconcile_stale
from tests.payments.builders import DEMO_SKU, order_build
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = pytest.mark.django_db(transaction=True)


def stock() -> int:
    return Variant.objects.get(sku=DEMO_SKU).available


def overdue(order: Order) -> None:
    Order.objects.filter(pk=order.pk).update(
        expires_at=timezone.now() - GRACE - timedelta(minutes=1)
    )


def checkout(client: Client) -> Any:
    """A real checkout through the API (the sandbox creates its session)."""
    demo_catalog_seed()
    return client.post(
        "/api/v1/checkout",
        {"email": "buyer@example.com", "lines": [{"sku": DEMO_SKU, "quantity": 2}]},
        content_type="application/json",
    )


def test_an_overdue_order_that_never_got_a_session_is_expired_and_its_stock_released(
    demo_catalog: None, stripe_settings: Any
) -> None:
    order = order_build(with_session=False)
    overdue(order)
    assert orders_reconcile_stale() == 1
    order.refresh_from_db()
    assert (order.status, stock()) == ("expired", 500)


def test_a_recent_order_is_left_alone(demo_catalog: None, stripe_settings: Any) -> None:
    order = order_build(with_session=False)
    assert orders_reconcile_stale() == 0
    order.refresh_from_db()
    assert order.status == "pending"


def test_an_overdue_order_whose_expiry_webhook_never_came_is_expired_from_stripe(
    client: Client, sandbox: SandboxServer
) -> None:
    response = checkout(client)
    assert response.status_code == 201
    sandbox.control("clock/advance", {"seconds": 90000})  # Stripe expired it; no endpoint
    order = Order.objects.get(pk=response.json()["order"]["id"])
    overdue(order)
    orders_reconcile_stale()
    order.refresh_from_db()
    assert (order.status, stock()) == ("expired", 500)


def test_an_overdue_order_paid_at_stripe_is_paid_by_reconciliation(
    client: Client, sandbox: SandboxServer
) -> None:
    response = checkout(client)
    body = response.json()
    sandbox.control(
        f"checkout/sessions/{body['checkout_session_id']}/pay", {"card": "4242424242424242"}
    )
    order = Order.objects.get(pk=body["order"]["id"])
    overdue(order)
    orders_reconcile_stale()
    order.refresh_from_db()
    assert (order.status, order.payment_status) == ("paid", "paid")


def test_orders_that_never_settle_do_not_starve_a_newer_overdue_order(
    demo_catalog: None, sandbox: SandboxServer, settings: Any
) -> None:
    settings.RECONCILE_BATCH_SIZE = 3
    stuck = [order_build() for _ in range(3)]  # sessions the sandbox never heard of
    for order in stuck:
        overdue(order)
        Order.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(days=2))
    newer = order_build(with_session=False)
    overdue(newer)
    orders_reconcile_stale()
    orders_reconcile_stale()
    newer.refresh_from_db()
    assert newer.status == "expired"
    assert {o.status for o in Order.objects.filter(pk__in=[o.pk for o in stuck])} == {"pending"}
