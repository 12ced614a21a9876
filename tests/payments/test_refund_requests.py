"""Staff and policy refunds (payments.refund_requests) against the sandbox over real HTTP:
the refund row is committed first, Stripe is asked with no lock held, and Stripe never
refunds more than was paid, whatever races, timeouts, outages and refusals happen."""

import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client

from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order, OrderEvent
from djangomart.payments import refund_requests
from djangomart.payments.checkout import order_sync
from djangomart.payments.refund_requests import (
    RefundExceedsRefundable,
    refund_request,
    refundable,
)
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = pytest.mark.django_db(transaction=True)

GOOD_CARD = "4242424242424242"
SKU = "CLASSIC-TEE-M"  # 20.00 USD: two make an order of 4000


def paid_order(client: Client, sandbox: SandboxServer, quantity: int = 2) -> Order:
    """Checkout, paid at the sandbox, and synced (the order paid, its Payment row)."""
    from djangomart.catalog.demo import demo_catalog_seed

    demo_catalog_seed()
    response = client.post(
        "/api/v1/checkout",
        {"email": "buyer@example.com", "lines": [{"sku": SKU, "quantity": quantity}]},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    sandbox.control(f"checkout/sessions/{body['checkout_session_id']}/pay", {"card": GOOD_CARD})
    order = order_sync(order_id=uuid.UUID(body["order"]["id"]))
    assert (order.status, order.amount_paid) == ("paid", 2000 * quantity)
    return order


@pytest.fixture
def staff(db: None) -> User:
    return User.objects.create_user("alice", is_staff=True)


def charge_of(sandbox: SandboxServer, order: Order) -> dict[str, Any]:
    intent = sandbox.client().v1.payment_intents.retrieve(str(order.stripe_payment_intent_id))
    charge = sandbox.client().v1.charges.retrieve(str(intent.latest_charge))
    return charge.to_dict()


def stripe_refunds(sandbox: SandboxServer, order: Order) -> list[dict[str, Any]]:
    listed = sandbox.client().v1.refunds.list(
        params={"payment_intent": str(order.stripe_payment_intent_id), "limit": 100}
    )
    return [r.to_dict() for r in listed.data]


def refund_posts(sandbox: SandboxServer) -> list[dict[str, Any]]:
    return sandbox.requests(method="POST", path="/v1/refunds")


def ask(order: Order, user: User | None, **kwargs: Any) -> refund_requests.RefundOutcome:
    args: dict[str, Any] = {"amount": None, "reason": None, "note": "", "idempotency_key": None}
    args.update(kwargs)
    return refund_request(order_id=order.pk, user=user, **args)


def test_a_staff_refund_is_committed_then_sent_to_stripe_with_its_own_key(
    sandbox: SandboxServer, client: Client, staff: User
) -> None:
    order = paid_order(client, sandbox)
    outcome = ask(order, staff, amount=1500, reason="requested_by_customer", note="Mug broke")
    refund = outcome.refund
    assert outcome.created
    assert (refund.status, refund.amount, refund.currency, refund.origin) == (
        "succeeded", 1500, "usd", "staff"
    )  # fmt: skip
    assert refund.requested_by == staff
    assert refund.stripe_refund_id is not None
    assert (refund.submit_next_at, refund.last_error, refund.submit_attempts) == (None, "", 1)
    [post] = refund_posts(sandbox)
    assert post["idempotency_key"] == f"refund:{refund.pk}"
    assert post["params"]["metadata"] == {"refund_id": str(refund.pk), "order_id": str(order.pk)}
    assert post["params"]["amount"] == "1500"
    assert charge_of(sandbox, order)["amount_refunded"] == 1500
    with transaction.atomic():
        locked = orders_lock([order.pk])[order.pk]
        assert refundable(locked) == 2500
    notes = OrderEvent.objects.filter(order=order, kind=OrderEvent.Kind.REFUND)
    assert [e.data["status"] for e in notes.order_by("pk")] == ["pending", "succeeded"]
    assert notes.order_by("pk")[0].staff_user == staff
    assert "Mug broke" in notes.order_by("pk")[0].message


def test_without_an_amount_everything_left_is_refunded(
    sandbox: SandboxServer, client: Client, staff: User
) -> None:
    order = paid_order(client, sandbox)
    ask(order, staff, amount=1000)
    outcome = ask(order, staff)
    assert (outcome.refund.amount, outcome.refund.status) == (3000, "succeeded")
    assert charge_of(sandbox, order)["amount_refunded"] == 4000
    with pytest.raises(RefundExceedsRefundable) as nothing_left:
        ask(order, staff)
    assert nothing_left.value.extra["refundable"] == 0
    assert len(refund_posts(sandbox)) == 2
