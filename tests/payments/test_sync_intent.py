"""The sync reads the PaymentIntent of a complete/unpaid Checkout Session (a delayed
method): Stripe leaves such a session complete/unpaid whether the bank debit is still
processing, succeeded or failed, so only the PaymentIntent tells.

The states the sandbox reaches are tested over HTTP in test_reconcile.py; here the
PaymentIntent is built by hand for what the sandbox cannot show (a PaymentIntent that
succeeded while its session still says unpaid, a canceled one, one that is not the
order's), and a Stripe that answers the session but not the PaymentIntent."""

import json
import logging
from typing import Any

import pytest
from django.db import transaction
from django.test import Client

from djangomart.catalog.models import Variant
from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order
from djangomart.payments import gateway
from djangomart.payments.checkout import checkout_session_apply, order_sync
from djangomart.payments.models import Payment
from tests.payments.builders import DEMO_SKU, new_intent_id, order_build
from tests.payments.conftest import intent_object, session_object
from tests.payments.stripe_proxy import Handler, StripeProxy
from tests.stripe_sandbox.harness import SandboxServer


def available() -> int:
    return Variant.objects.get(sku=DEMO_SKU).available


def sync_apply(order: Order, intent: dict[str, Any] | None) -> Order:
    """order_sync's step under the lock, with a session complete/unpaid naming the
    order's PaymentIntent and `intent` as read from Stripe."""
    session = session_object(order, payment_status="unpaid")
    with transaction.atomic():
        locked = orders_lock([order.pk])[order.pk]
        checkout_session_apply(locked, session, intent=intent)
    return Order.objects.get(pk=order.pk)


@pytest.fixture
def order(demo_catalog: None) -> Order:
    return order_build(intent_id=new_intent_id())


def own_intent(order: Order, **overrides: Any) -> dict[str, Any]:
    assert order.stripe_payment_intent_id
    return intent_object(order, order.stripe_payment_intent_id, **overrides)


def test_a_succeeded_intent_pays_while_the_session_still_says_unpaid(order: Order) -> None:
    order = sync_apply(order, own_intent(order, status="succeeded"))
    assert (order.status, order.payment_status, order.amount_paid) == ("paid", "paid", 4000)


def test_a_succeeded_intent_for_another_amount_is_flagged_never_paid(order: Order) -> None:
    order = sync_apply(order, own_intent(order, status="succeeded", amount_received=3999))
    assert (order.status, order.needs_attention, order.attention_reasons) == (
        "pending",
        True,
        ["amount_mismatch"],
    )


def test_a_succeeded_intent_in_another_currency_is_flagged_never_paid(order: Order) -> None:
    order = sync_apply(order, own_intent(order, status="succeeded", currency="eur"))
    assert (order.status, order.attention_reasons) == ("pending", ["currency_mismatch"])


@pytest.mark.parametrize("status", ["requires_payment_method", "canceled"])
def test_an_intent_back_to_unpaid_after_processing_fails_the_order(
    order: Order, status: str
) -> None:
    assert available() == 498
    order = sync_apply(order, own_intent(order, status=status, amount_received=0))
    assert (order.status, order.payment_status, available()) == ("failed", "unpaid", 500)
    assert Payment.objects.get(order=order).async_failed


def test_a_processing_intent_changes_nothing_but_the_processing_fact(order: Order) -> None:
    order = sync_apply(order, own_intent(order, status="processing", amount_received=0))
    assert (order.status, order.payment_status, available()) == ("pending", "processing", 498)


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"id": "pi_test_someone_elses"}, id="another id"),
        pytest.param({"metadata": {"order_id": "another-order"}}, id="another order's metadata"),
        pytest.param({"livemode": True}, id="the other mode"),
    ],
)
def test_an_intent_that_is_not_the_one_the_session_names_counts_for_nothing(
    order: Order, overrides: dict[str, Any]
) -> None:
    for status in ("succeeded", "requires_payment_method"):
        intent = own_intent(order, status=status, **overrides)
        order = sync_apply(order, intent)
        assert (order.status, order.payment_status, order.amount_paid) == (
            "pending",
            "processing",
            0,
        )
    assert available() == 498


def test_an_intent_without_metadata_is_the_orders_own_when_the_session_names_it(
    order: Order,
) -> None:
    order = sync_apply(order, own_intent(order, status="canceled", metadata={}))
    assert order.status == "failed"


def test_the_webhook_path_reads_no_intent_and_keeps_the_order_processing(order: Order) -> None:
    order = sync_apply(order, None)
    assert (order.status, order.payment_status) == ("pending", "processing")


# -- Stripe answers the session, not the PaymentIntent ------------------------------------


@pytest.fixture
def delayed_order(demo_catalog: None, sandbox: SandboxServer) -> Order:
    """An order whose real sandbox session was paid by bank debit, which then failed."""
    session = sandbox.client().v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "success_url": "http://localhost:3000/ok",
            "cancel_url": "http://localhost:3000/cancel",
            "line_items": [{"quantity": 2, "price_data": {
                "currency": "usd", "unit_amount": 2000, "product_data": {"name": "Tee"}}}],
        }
    )  # fmt: skip
    sandbox.control(f"checkout/sessions/{session.id}/pay", {"method": "delayed"})
    sandbox.control(f"checkout/sessions/{session.id}/delayed_payment", {"result": "failed"})
    return order_build(session_id=session.id)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        pytest.param(500, {"type": "api_error", "message": "boom"}, id="outage"),
        pytest.param(
            404,
            {"type": "invalid_request_error", "code": "resource_missing", "message": "No such"},
            id="unknown",
        ),
    ],
)
def test_a_payment_intent_stripe_cannot_show_leaves_the_order_as_its_session_says(
    delayed_order: Order,
    sandbox: SandboxServer,
    stripe_settings: Any,
    stripe_proxy: Any,
    caplog: pytest.LogCaptureFixture,
    client: Client,
    status: int,
    error: dict[str, Any],
) -> None:
    def intent_refused(
        proxy: StripeProxy, method: str, path: str, count: int, handler: Handler, body: bytes
    ) -> bool:
        # Stripe in front of the sandbox: everything is passed on but reading a PaymentIntent.
        if not path.startswith("/v1/payment_intents/"):
            return False
        handler.answer_json(status, json.dumps({"error": error}).encode())
        return True

    stripe_settings.STRIPE_RETRY_BUDGET = 2
    proxy = stripe_proxy(intent_refused)
    with caplog.at_level(logging.WARNING, logger="djangomart.payments.checkout"):
        response = client.post(
            f"/api/v1/orders/{delayed_order.pk}/sync",
            HTTP_X_ORDER_TOKEN=delayed_order.access_token,
        )
    # The session was read and applied (processing); the PaymentIntent's failure is
    # learnt on a later sync or reconciliation.
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["payment_status"]) == (
        "pending",
        "processing",
    )
    assert sum(n for (_, path), n in proxy.seen.items() if "/payment_intents/" in path) >= 1
    assert available() == 498
    logged = [r for r in caplog.records if "PaymentIntent" in r.getMessage()]
    assert logged
    assert logged[0].stripe_status == status  # type: ignore[attr-defined]

    # Stripe answers again: the next look learns that the debit failed.
    stripe_settings.STRIPE_API_BASE = sandbox.url
    gateway.client_reset()
    order = order_sync(order_id=delayed_order.pk)
    assert (order.status, available()) == ("failed", 500)
