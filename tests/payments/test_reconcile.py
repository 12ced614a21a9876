"""Reconciliation: pending orders whose session should have ended are brought in line
with Stripe (the webhook never came), or expired when they never got a session."""

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from djangomart.catalog.demo import demo_catalog_seed
from djangomart.catalog.models import StockMovement, Variant
from djangomart.orders.models import Order, OrderEvent
from djangomart.payments.checkout import order_sync
from djangomart.payments.models import Payment
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


# -- A delayed payment whose webhooks were lost: the PaymentIntent decides --------------
#
# No webhook endpoint is registered with the sandbox, so every event is lost. After a
# bank debit fails, Stripe leaves the Checkout Session complete/unpaid for good (only
# its PaymentIntent goes back to requires_payment_method); reading the session alone
# would keep the order pending and its stock reserved forever.


def delayed_checkout(client: Client, sandbox: SandboxServer) -> tuple[Order, str]:
    """A real checkout paid by bank debit (still processing), already looked at once by
    reconciliation, as if the checkout.session.completed webhook had come."""
    body = checkout(client).json()
    session_id = body["checkout_session_id"]
    sandbox.control(f"checkout/sessions/{session_id}/pay", {"method": "delayed"})
    order = Order.objects.get(pk=body["order"]["id"])
    overdue(order)
    orders_reconcile_stale()
    order.refresh_from_db()
    assert (order.status, order.payment_status) == ("pending", "processing")
    return order, session_id


def due_again(order: Order) -> None:
    Order.objects.filter(pk=order.pk).update(reconcile_next_at=timezone.now() - GRACE)


def written(order: Order) -> tuple[int, int, int]:
    """What a run can write for an order: timeline rows, stock movements, payments."""
    return (
        OrderEvent.objects.filter(order=order).count(),
        StockMovement.objects.filter(order=order).count(),
        Payment.objects.filter(order=order).count(),
    )


def test_a_lost_async_payment_failed_fails_the_order_and_releases_its_stock_once(
    client: Client, sandbox: SandboxServer
) -> None:
    order, session_id = delayed_checkout(client, sandbox)
    assert stock() == 498
    sandbox.control(f"checkout/sessions/{session_id}/delayed_payment", {"result": "failed"})
    due_again(order)
    orders_reconcile_stale()
    order.refresh_from_db()
    assert (order.status, order.payment_status, stock()) == ("failed", "unpaid", 500)
    assert Payment.objects.get(order=order).async_failed
    assert order.events.filter(kind="note", message="Stock released.").count() == 1
    failed = order.events.get(kind="transition", to_status="failed")
    assert "requires_payment_method" in failed.message

    # Neither another reconciliation (it skips the order now) nor a sync writes again.
    before = written(order)
    due_again(order)
    orders_reconcile_stale()
    order_sync(order_id=order.pk)
    order.refresh_from_db()
    assert (written(order), order.status, stock()) == (before, "failed", 500)


def test_a_lost_async_payment_failed_is_found_by_the_first_look_too(
    client: Client, sandbox: SandboxServer
) -> None:
    # Every webhook lost, checkout.session.completed included: one look sees it all.
    body = checkout(client).json()
    session_id = body["checkout_session_id"]
    sandbox.control(f"checkout/sessions/{session_id}/pay", {"method": "delayed"})
    sandbox.control(f"checkout/sessions/{session_id}/delayed_payment", {"result": "failed"})
    order = Order.objects.get(pk=body["order"]["id"])
    overdue(order)
    orders_reconcile_stale()
    order.refresh_from_db()
    assert (order.status, order.payment_status, stock()) == ("failed", "unpaid", 500)


def test_a_lost_async_payment_succeeded_is_paid_by_reconciliation(
    client: Client, sandbox: SandboxServer
) -> None:
    order, session_id = delayed_checkout(client, sandbox)
    sandbox.control(f"checkout/sessions/{session_id}/delayed_payment", {"result": "succeeded"})
    due_again(order)
    orders_reconcile_stale()
    order.refresh_from_db()
    assert (order.status, order.payment_status, order.amount_paid) == ("paid", "paid", 4000)
    assert Variant.objects.get(sku=DEMO_SKU).on_hand == 498  # sold, not released


def test_a_payment_still_processing_writes_nothing_on_the_next_look(
    client: Client, sandbox: SandboxServer
) -> None:
    order, _ = delayed_checkout(client, sandbox)
    before = (written(order), order_row(order))
    due_again(order)
    orders_reconcile_stale()
    assert (written(order), order_row(order)) == before
    assert stock() == 498


def order_row(order: Order) -> dict[str, object]:
    """The order's row but for reconciliation's own bookkeeping (its backoff)."""
    row = Order.objects.values().get(pk=order.pk)
    return {k: v for k, v in row.items() if k not in ("reconcile_next_at", "reconcile_attempts")}


def test_the_sync_endpoint_fails_an_order_whose_async_payment_failed_was_lost(
    client: Client, sandbox: SandboxServer
) -> None:
    body = checkout(client).json()
    session_id = body["checkout_session_id"]
    sandbox.control(f"checkout/sessions/{session_id}/pay", {"method": "delayed"})
    sandbox.control(f"checkout/sessions/{session_id}/delayed_payment", {"result": "failed"})
    response = client.post(
        f"/api/v1/orders/{body['order']['id']}/sync", HTTP_X_ORDER_TOKEN=body["access_token"]
    )
    assert response.status_code == 200
    assert response.json()["status"] == "failed"
    assert stock() == 500
