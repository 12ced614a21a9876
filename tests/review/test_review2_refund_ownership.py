"""Review 2: a refund event that names one of our refund rows in its metadata (any
integration on the account can put `refund_id` there) must not make that row's amount
count as refunded when Stripe's refund is of another amount."""

import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from djangomart.orders.models import Order
from djangomart.payments.models import Refund
from djangomart.payments.refund_requests import refund_request
from tests.payments.refund_helpers import refund_object, send
from tests.payments.test_refund_requests import Outage, paid_order
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_refund_naming_our_pending_refund_with_another_amount_does_not_count_ours(
    sandbox: SandboxServer, client: Client, stripe_proxy: Any
) -> None:
    order = paid_order(client, sandbox)  # 4000 USD, paid at the sandbox
    staff = User.objects.create_user("alice", is_staff=True)
    outage = Outage()
    stripe_proxy(outage)
    ours = refund_request(
        order_id=order.pk, amount=3000, reason=None, note="", user=staff, idempotency_key=None
    ).refund
    assert (ours.status, ours.stripe_refund_id) == ("pending", None)  # Stripe unreachable

    # Another integration refunds 100 of the same PaymentIntent, copying our metadata.
    forged = refund_object(
        order,
        str(order.stripe_payment_intent_id),
        amount=100,
        metadata={"refund_id": str(ours.pk), "order_id": str(order.pk)},
    )
    send(client, "refund.created", forged)

    order = Order.objects.get(pk=order.pk)
    # Stripe refunded 100 so far: the order must not say 3000.
    assert order.amount_refunded == 100
    ours.refresh_from_db()
    assert ours.stripe_refund_id != forged["id"]
    assert ours.status == "pending"  # still to be sent: the customer is owed 3000 more


def test_a_refund_naming_our_refund_row_does_not_take_over_a_row_of_another_amount_any_way(
    sandbox: SandboxServer, client: Client, stripe_proxy: Any
) -> None:
    """The same through refund.failed of another refund: our 3000 refund is marked failed
    although Stripe never saw it (its refusal belongs to the other refund)."""
    order = paid_order(client, sandbox)
    staff = User.objects.create_user("alice", is_staff=True)
    stripe_proxy(Outage())
    ours = refund_request(
        order_id=order.pk, amount=3000, reason=None, note="", user=staff, idempotency_key=None
    ).refund
    forged = refund_object(
        order,
        str(order.stripe_payment_intent_id),
        refund_id=f"re_test_{uuid.uuid4().hex[:24]}",
        amount=100,
        status="failed",
        failure_reason="expired_or_canceled_card",
        metadata={"refund_id": str(ours.pk)},
    )
    send(client, "refund.failed", forged)
    ours.refresh_from_db()
    assert (ours.status, ours.stripe_refund_id) == ("pending", None)
    assert Refund.objects.filter(stripe_refund_id=forged["id"], amount=100).exists()
