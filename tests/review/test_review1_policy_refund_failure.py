"""Review 1: a late-payment policy refund that Stripe fails is money kept for an ended
order; nobody is told (no attention flag), and nothing sends it again."""

from typing import Any

import pytest
from django.test import Client

from djangomart.payments.models import Refund
from tests.payments.test_late_payment_policy import (  # noqa: F401 (fixture)
    GOOD_CARD,
    checkout,
    expire_here,
    settle,
    shop,
)
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = [
    pytest.mark.usefixtures("queued_jobs_removed"),
    pytest.mark.django_db(transaction=True),
]


def test_a_failed_policy_refund_flags_the_order_for_staff(
    shop: SandboxServer,  # noqa: F811
    client: Client,
    settings: Any,
) -> None:
    settings.LATE_PAYMENT_POLICY = "refund"
    order, session_id = checkout(client)
    expire_here(client, order)
    shop.control(f"checkout/sessions/{session_id}/pay", {"card": GOOD_CARD})
    settle(shop)
    refund = Refund.objects.get(order=order, origin="policy")
    assert refund.status == "succeeded"

    # The card can no longer take the money back: Stripe fails the refund.
    shop.control(f"refunds/{refund.stripe_refund_id}/fail", {})
    settle(shop)
    refund.refresh_from_db()
    order.refresh_from_db()
    assert refund.status == "failed"
    assert (order.status, order.amount_paid, order.amount_refunded) == ("expired", 3800, 0)
    # The shop now keeps 38.00 for an order it will never ship, and the policy will not
    # refund that payment again ("exactly once"): a human must know.
    assert order.needs_attention, order.attention_reasons
