"""Checkout, pay on the sandbox, webhook over HTTP, worker: the order ends where it should."""

from typing import Any

import pytest
from django.test import Client

from djangomart.catalog.demo import DEMO_STOCK
from djangomart.catalog.models import Variant
from djangomart.orders.models import Order, OrderEvent
from djangomart.payments.models import StripeEvent
from tests.payments.conftest import WEBHOOK_SECRET, run_jobs
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = pytest.mark.django_db(transaction=True)

GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"
THREE_D_SECURE_CARD = "4000002500003155"
SKU = "CLASSIC-TEE-M"


@pytest.fixture
def shop(sandbox: SandboxServer, live_server: Any) -> SandboxServer:
    from djangomart.catalog.demo import demo_catalog_seed

    demo_catalog_seed()
    sandbox.add_endpoint(f"{live_server.url}/webhooks/stripe", WEBHOOK_SECRET)
    return sandbox


def checkout(client: Client) -> dict[str, Any]:
    response = client.post(
        "/api/v1/checkout",
        {"email": "buyer@example.com", "lines": [{"sku": SKU, "quantity": 2}]},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    return response.json()  # type: ignore[no-any-return]


def settle(sandbox: SandboxServer) -> None:
    """Every webhook delivered and every event processed, none left failing."""
    sandbox.wait_idle()
    run_jobs()
    unsettled = StripeEvent.objects.exclude(status__in=["processed", "ignored"])
    assert list(unsettled.values_list("type", "status", "last_error")) == []


def pay(sandbox: SandboxServer, body: dict[str, Any], **how: Any) -> str:
    """One payment attempt on the hosted page; returns the sandbox's outcome."""
    result = sandbox.control(f"checkout/sessions/{body['checkout_session_id']}/pay", how)
    return str(result["outcome"])


def order_of(body: dict[str, Any]) -> Order:
    return Order.objects.get(pk=body["order"]["id"])


def timeline(order: Order) -> list[OrderEvent]:
    return list(order.events.order_by("created_at", "pk"))


def stock() -> int:
    return Variant.objects.get(sku=SKU).available


def test_paying_with_a_good_card_makes_the_order_paid(shop: SandboxServer, client: Client) -> None:
    body = checkout(client)
    shop.control(
        f"checkout/sessions/{body['checkout_session_id']}/pay", {"card": "4242424242424242"}
    )
    settle(shop)
    order = Order.objects.get(pk=body["order"]["id"])
    assert (order.status, order.payment_status, order.amount_paid) == ("paid", "paid", 4000)


def test_a_declined_card_leaves_the_order_pending_with_the_failed_attempt_on_its_timeline(
    shop: SandboxServer, client: Client
) -> None:
    body = checkout(client)
    assert pay(shop, body, card=DECLINED_CARD) == "declined"
    settle(shop)
    order = order_of(body)
    failed_attempts = [
        e for e in timeline(order) if e.kind == OrderEvent.Kind.PAYMENT_ATTEMPT_FAILED
    ]
    assert (order.status, order.payment_status, order.amount_paid) == ("pending", "unpaid", 0)
    assert len(failed_attempts) == 1
    assert failed_attempts[0].data["decline_code"] == "generic_decline"
    assert failed_attempts[0].stripe_event_id.startswith("evt_")


def test_a_good_card_after_a_declined_one_in_the_same_session_makes_the_order_paid(
    shop: SandboxServer, client: Client
) -> None:
    body = checkout(client)
    assert pay(shop, body, card=DECLINED_CARD) == "declined"
    settle(shop)
    assert pay(shop, body, card=GOOD_CARD) == "succeeded"
    settle(shop)
    order = order_of(body)
    events = timeline(order)
    assert (order.status, order.payment_status, order.amount_paid) == ("paid", "paid", 4000)
    assert OrderEvent.Kind.PAYMENT_ATTEMPT_FAILED in [e.kind for e in events]
    assert "failed" not in [e.to_status for e in events]


def test_a_declined_card_and_the_good_card_delivered_together_still_make_the_order_paid(
    shop: SandboxServer, client: Client
) -> None:
    body = checkout(client)
    pay(shop, body, card=DECLINED_CARD)
    pay(shop, body, card=GOOD_CARD)
    settle(shop)
    order = order_of(body)
    assert (order.status, order.payment_status) == ("paid", "paid")
    assert "failed" not in [e.to_status for e in timeline(order)]


def test_a_delayed_payment_method_leaves_the_order_pending_while_the_payment_is_processing(
    shop: SandboxServer, client: Client
) -> None:
    body = checkout(client)
    assert pay(shop, body, method="delayed") == "processing"
    settle(shop)
    order = order_of(body)
    assert (order.status, order.payment_status, order.amount_paid) == ("pending", "processing", 0)


def test_a_delayed_payment_that_succeeds_makes_the_order_paid(
    shop: SandboxServer, client: Client
) -> None:
    body = checkout(client)
    pay(shop, body, method="delayed")
    settle(shop)
    shop.control(
        f"checkout/sessions/{body['checkout_session_id']}/delayed_payment", {"result": "succeeded"}
    )
    settle(shop)
    order = order_of(body)
    assert (order.status, order.payment_status, order.amount_paid) == ("paid", "paid", 4000)


def test_a_delayed_payment_that_fails_makes_the_order_failed_and_gives_its_stock_back(
    shop: SandboxServer, client: Client
) -> None:
    body = checkout(client)
    pay(shop, body, method="delayed")
    settle(shop)
    assert stock() == DEMO_STOCK - 2
    shop.control(
        f"checkout/sessions/{body['checkout_session_id']}/delayed_payment", {"result": "failed"}
    )
    settle(shop)
    order = order_of(body)
    assert (order.status, order.payment_status, order.amount_paid) == ("failed", "unpaid", 0)
    assert stock() == DEMO_STOCK


def test_a_session_that_runs_out_of_time_makes_the_order_expired_and_gives_its_stock_back(
    shop: SandboxServer, client: Client
) -> None:
    body = checkout(client)
    assert stock() == DEMO_STOCK - 2
    expired = shop.control("clock/advance", {"seconds": 90000})
    assert expired["expired"] == [body["checkout_session_id"]]
    settle(shop)
    order = order_of(body)
    assert (order.status, order.payment_status) == ("expired", "unpaid")
    assert stock() == DEMO_STOCK


def test_a_session_expired_through_the_api_makes_the_order_expired(
    shop: SandboxServer, client: Client
) -> None:
    body = checkout(client)
    shop.client().v1.checkout.sessions.expire(body["checkout_session_id"])
    settle(shop)
    assert order_of(body).status == "expired"
    assert stock() == DEMO_STOCK


def test_a_card_approved_by_3d_secure_makes_the_order_paid(
    shop: SandboxServer, client: Client
) -> None:
    body = checkout(client)
    assert pay(shop, body, card=THREE_D_SECURE_CARD) == "requires_action"
    settle(shop)
    assert order_of(body).status == "pending"
    shop.control(
        f"checkout/sessions/{body['checkout_session_id']}/authenticate", {"result": "approve"}
    )
    settle(shop)
    order = order_of(body)
    assert (order.status, order.payment_status, order.amount_paid) == ("paid", "paid", 4000)


def test_a_card_failing_3d_secure_leaves_the_order_pending_for_another_try(
    shop: SandboxServer, client: Client
) -> None:
    body = checkout(client)
    pay(shop, body, card=THREE_D_SECURE_CARD)
    shop.control(
        f"checkout/sessions/{body['checkout_session_id']}/authenticate", {"result": "fail"}
    )
    settle(shop)
    order = order_of(body)
    assert (order.status, order.payment_status) == ("pending", "unpaid")
    assert OrderEvent.Kind.PAYMENT_ATTEMPT_FAILED in [e.kind for e in timeline(order)]
