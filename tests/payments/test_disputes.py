"""Disputes as facts (payments.disputes), driven by signed hand-built `charge.dispute.*`
events through the real webhook and inbox: the Dispute row, the order's dispute state,
its attention reasons and its timeline."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client

from djangomart.orders.models import Order, OrderEvent
from djangomart.orders.services import order_flag
from djangomart.payments.inbox import stripe_event_process, stripe_event_replay
from djangomart.payments.models import Dispute, StripeEvent
from tests.payments.builders import (
    dispute_object,
    new_dispute_id,
    new_intent_id,
    order_build,
)
from tests.payments.conftest import event_json, post_event, session_object

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_settings", "demo_catalog")]

T0 = 1_800_000_000


def deliver(
    client: Client,
    event_type: str,
    obj: dict[str, Any],
    *,
    created: int = T0,
    event_id: str | None = None,
) -> str:
    """Posts one signed event and runs the worker on it and on anything it queued again
    (events that waited for their PaymentIntent). Returns the event id."""
    payload = event_json(event_type, obj, event_id=event_id, created=created)
    response = post_event(client, payload)
    assert response.status_code == 200, response.content
    event_id = str(json.loads(payload)["id"])
    stripe_event_process(event_id=event_id)
    for requeued in StripeEvent.objects.filter(status=StripeEvent.Status.RECEIVED):
        stripe_event_process(event_id=requeued.pk)
    return event_id


def paid_order(client: Client) -> tuple[Order, str]:
    """An order its own Checkout Session paid, and that session's PaymentIntent."""
    order = order_build()
    intent_id = new_intent_id()
    deliver(client, "checkout.session.completed", session_object(order, payment_intent=intent_id))
    order.refresh_from_db()
    assert (order.status, order.payment_status) == ("paid", "paid")
    return order, intent_id


def dispute_notes(order: Order) -> list[str]:
    return list(
        order.events.filter(kind=OrderEvent.Kind.DISPUTE)
        .order_by("pk")
        .values_list("message", flat=True)
    )


def state(order: Order) -> tuple[Any, ...]:
    order.refresh_from_db()
    return (
        order.disputed,
        order.dispute_lost,
        order.amount_lost_to_disputes,
        order.needs_attention,
        order.attention_reasons,
    )


def test_a_dispute_opened_answered_and_won_leaves_the_order_undisputed_with_its_history(
    client: Client,
) -> None:
    order, intent_id = paid_order(client)
    dp = new_dispute_id()
    opened = deliver(client, "charge.dispute.created", dispute_object(order, intent_id, dp))
    deliver(client, "charge.dispute.funds_withdrawn", dispute_object(order, intent_id, dp))

    dispute = Dispute.objects.get(stripe_dispute_id=dp)
    assert (dispute.order_id, dispute.payment.stripe_payment_intent_id) == (order.pk, intent_id)
    assert (dispute.status, dispute.amount, dispute.currency, dispute.reason) == (
        "needs_response",
        4000,
        "usd",
        "fraudulent",
    )
    assert dispute.evidence_due_by == datetime.fromtimestamp(1_800_604_800, UTC)
    assert (dispute.funds_withdrawn, dispute.funds_reinstated) == (True, False)
    assert state(order) == (True, False, 0, True, ["dispute_open"])
    flag = order.events.get(kind=OrderEvent.Kind.FLAGGED, data__reason="dispute_open")
    assert flag.stripe_event_id == opened
    # Lost or disputed money is not a refund.
    assert (order.payment_status, order.amount_paid, order.amount_refunded) == ("paid", 4000, 0)

    deliver(
        client,
        "charge.dispute.updated",
        dispute_object(order, intent_id, dp, status="under_review"),
        created=T0 + 60,
    )
    assert Dispute.objects.get(stripe_dispute_id=dp).status == "under_review"
    assert state(order) == (True, False, 0, True, ["dispute_open"])

    closed = dispute_object(order, intent_id, dp, status="won")
    deliver(client, "charge.dispute.closed", closed, created=T0 + 120)
    deliver(client, "charge.dispute.funds_reinstated", closed, created=T0 + 120)

    dispute.refresh_from_db()
    assert (dispute.status, dispute.funds_withdrawn, dispute.funds_reinstated) == (
        "won",
        True,
        True,
    )
    assert state(order) == (False, False, 0, False, [])
    assert dispute_notes(order) == [
        f"Dispute {dp} (40.00 USD) opened, reason fraudulent: needs_response. "
        "Evidence due by 2027-01-22 08:00 UTC.",
        f"40.00 USD withdrawn from the balance for dispute {dp}.",
        f"Dispute {dp} (40.00 USD): needs_response -> under_review. "
        "Evidence due by 2027-01-22 08:00 UTC.",
        f"Dispute {dp} (40.00 USD) closed: won, the money is back.",
        f"40.00 USD reinstated to the balance: dispute {dp}.",
    ]
    cleared = order.events.filter(kind=OrderEvent.Kind.NOTE).last()
    assert cleared is not None
    assert cleared.message == f"dispute_open cleared: No dispute is open any more ({dp} won)."
    assert cleared.data == {"reasons": ["dispute_open"], "remaining": []}


def test_a_lost_dispute_keeps_the_order_flagged_dispute_lost_with_the_amount_lost(
    client: Client,
) -> None:
    order, intent_id = paid_order(client)
    dp = new_dispute_id()
    deliver(client, "charge.dispute.created", dispute_object(order, intent_id, dp, amount=2500))
    closed = deliver(
        client,
        "charge.dispute.closed",
        dispute_object(order, intent_id, dp, status="lost", amount=2500),
        created=T0 + 60,
    )
    assert state(order) == (False, True, 2500, True, ["dispute_lost"])
    flag = order.events.get(kind=OrderEvent.Kind.FLAGGED, data__reason="dispute_lost")
    assert flag.stripe_event_id == closed
    assert "25.00 USD lost to disputes (not a refund)" in flag.message
    assert (order.status, order.payment_status, order.amount_refunded) == ("paid", "paid", 0)


def test_a_dispute_closing_keeps_the_orders_other_attention_reasons(client: Client) -> None:
    order, intent_id = paid_order(client)
    order_flag(order, "late_payment", message="Flagged for another reason.")
    dp = new_dispute_id()
    deliver(client, "charge.dispute.created", dispute_object(order, intent_id, dp))
    assert state(order)[3:] == (True, ["late_payment", "dispute_open"])
    deliver(
        client,
        "charge.dispute.closed",
        dispute_object(order, intent_id, dp, status="won"),
        created=T0 + 1,
    )
    assert state(order) == (False, False, 0, True, ["late_payment"])
    note = order.events.filter(kind=OrderEvent.Kind.NOTE).last()
    assert note is not None
    assert note.message.endswith("Still needs attention: late_payment.")


def test_an_inquiry_is_an_open_dispute_until_it_closes_as_warning_closed(client: Client) -> None:
    order, intent_id = paid_order(client)
    dp = new_dispute_id()
    inquiry = dispute_object(order, intent_id, dp, status="warning_needs_response")
    deliver(client, "charge.dispute.created", inquiry)
    dispute = Dispute.objects.get(stripe_dispute_id=dp)
    assert (dispute.status, dispute.is_charge_refundable, dispute.funds_withdrawn) == (
        "warning_needs_response",
        True,
        False,
    )
    assert state(order) == (True, False, 0, True, ["dispute_open"])
    deliver(
        client,
        "charge.dispute.closed",
        dispute_object(order, intent_id, dp, status="warning_closed"),
        created=T0 + 5,
    )
    assert state(order) == (False, False, 0, False, [])
    assert dispute_notes(order)[-1] == (
        f"Inquiry {dp} (40.00 USD) closed: warning_closed, the inquiry ended without a chargeback."
    )


def test_an_update_created_after_the_close_never_reopens_the_dispute(client: Client) -> None:
    """Stripe's clocks and ours may disagree: a closed status beats any open one."""
    order, intent_id = paid_order(client)
    dp = new_dispute_id()
    deliver(client, "charge.dispute.closed", dispute_object(order, intent_id, dp, status="lost"))
    deliver(
        client,
        "charge.dispute.updated",
        dispute_object(order, intent_id, dp, status="under_review"),
        created=T0 + 3600,
    )
    assert Dispute.objects.get(stripe_dispute_id=dp).status == "lost"
    assert state(order) == (False, True, 4000, True, ["dispute_lost"])
    assert dispute_notes(order) == [
        f"Dispute {dp} (40.00 USD), reason fraudulent: first seen already lost."
    ]


def test_an_older_snapshot_arriving_late_changes_nothing_and_writes_nothing(
    client: Client,
) -> None:
    order, intent_id = paid_order(client)
    dp = new_dispute_id()
    due_later = {"due_by": 1_800_700_000}
    deliver(
        client,
        "charge.dispute.updated",
        dispute_object(order, intent_id, dp, status="under_review", evidence_details=due_later),
        created=T0 + 60,
    )
    timeline = list(order.events.values_list("pk", flat=True))
    deliver(client, "charge.dispute.created", dispute_object(order, intent_id, dp), created=T0)
    dispute = Dispute.objects.get(stripe_dispute_id=dp)
    assert (dispute.status, dispute.evidence_due_by) == (
        "under_review",
        datetime.fromtimestamp(1_800_700_000, UTC),
    )
    assert list(order.events.values_list("pk", flat=True)) == timeline


def test_in_the_same_second_the_later_status_of_the_disputes_life_wins(client: Client) -> None:
    order, intent_id = paid_order(client)
    dp = new_dispute_id()
    deliver(
        client,
        "charge.dispute.updated",
        dispute_object(order, intent_id, dp, status="under_review"),
    )
    deliver(client, "charge.dispute.created", dispute_object(order, intent_id, dp))
    assert Dispute.objects.get(stripe_dispute_id=dp).status == "under_review"


def test_a_dispute_before_the_session_names_its_payment_intent_waits_and_is_applied_after(
    client: Client,
) -> None:
    order = order_build()
    intent_id = new_intent_id()
    dp = new_dispute_id()
    early = deliver(client, "charge.dispute.created", dispute_object(order, intent_id, dp))
    waiting = StripeEvent.objects.get(pk=early)
    assert waiting.status == "unmatched"
    assert not Dispute.objects.exists()
    order.refresh_from_db()
    assert (order.disputed, order.needs_attention) == (False, False)

    # The order's own session names the PaymentIntent: the waiting event is queued again
    # (deliver runs it) and recorded.
    deliver(client, "checkout.session.completed", session_object(order, payment_intent=intent_id))

    assert StripeEvent.objects.get(pk=early).status == "processed"
    assert Dispute.objects.get(stripe_dispute_id=dp).order_id == order.pk
    assert state(order) == (True, False, 0, True, ["dispute_open"])
    assert order.status == "paid"


def test_a_dispute_of_a_payment_intent_the_order_never_named_is_never_recorded(
    client: Client,
) -> None:
    order, _ = paid_order(client)
    stranger = new_intent_id()
    event_id = deliver(
        client,
        "charge.dispute.created",
        # Someone's dispute that names our order: metadata proves nothing.
        dispute_object(order, stranger, new_dispute_id(), metadata={"order_id": str(order.pk)}),
    )
    event = StripeEvent.objects.get(pk=event_id)
    assert event.status == "unmatched"
    assert event.last_error.startswith("Waiting: PaymentIntent")
    assert not Dispute.objects.exists()
    assert state(order) == (False, False, 0, False, [])


def test_the_same_event_again_and_a_replay_write_nothing(client: Client) -> None:
    order, intent_id = paid_order(client)
    dp = new_dispute_id()
    obj = dispute_object(order, intent_id, dp)
    event_id = deliver(client, "charge.dispute.created", obj)
    row = Dispute.objects.values().get(stripe_dispute_id=dp)
    timeline = list(order.events.values_list("pk", flat=True))

    deliver(client, "charge.dispute.created", obj, event_id=event_id)  # Stripe's retry
    StripeEvent.objects.filter(pk=event_id).update(status=StripeEvent.Status.DEAD)
    stripe_event_replay(event_id=event_id)
    stripe_event_process(event_id=event_id)
    deliver(client, "charge.dispute.created", obj)  # the same snapshot under a new event id

    after = Dispute.objects.values().get(stripe_dispute_id=dp)
    assert {k: v for k, v in after.items() if k not in ("snapshot_event_id", "updated_at")} == {
        k: v for k, v in row.items() if k not in ("snapshot_event_id", "updated_at")
    }
    assert list(order.events.values_list("pk", flat=True)) == timeline


def test_a_dispute_with_a_status_djangomart_does_not_know_fails_visibly(client: Client) -> None:
    order, intent_id = paid_order(client)
    payload = event_json(
        "charge.dispute.created",
        dispute_object(order, intent_id, new_dispute_id(), status="charge_refunded"),
    )
    post_event(client, payload)
    event_id = json.loads(payload)["id"]
    with pytest.raises(ValueError, match="unknown status 'charge_refunded'"):
        stripe_event_process(event_id=event_id)
    event = StripeEvent.objects.get(pk=event_id)
    assert (event.status, event.attempts) == ("failed", 1)
    assert not Dispute.objects.exists()
    assert state(order) == (False, False, 0, False, [])
