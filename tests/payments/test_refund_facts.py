"""Refunds as facts, driven with hand-built signed events through the real inbox: one
Refund row per Stripe refund, whoever made it, found by Stripe id or by our own
metadata.refund_id; status only forward; amount_refunded and payment_status derived
from the rows; every refund on the order's timeline."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from procrastinate.contrib.django.models import ProcrastinateJob

from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order, OrderEvent
from djangomart.payments.models import Payment, Refund, StripeEvent
from djangomart.payments.refunds import refund_fact, status_moves
from tests.payments.builders import new_intent_id, order_build
from tests.payments.conftest import event_json, session_object
from tests.payments.refund_helpers import (
    deliver,
    event_id_of,
    refund_object,
    refunded_charge_object,
    send,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_settings", "demo_catalog")]


def paid_order(client: Client) -> tuple[Order, str]:
    intent_id = new_intent_id()
    order = order_build()
    send(client, "checkout.session.completed", session_object(order, payment_intent=intent_id))
    order.refresh_from_db()
    assert (order.status, order.payment_status, order.amount_paid) == ("paid", "paid", 4000)
    return order, intent_id


def money(order: Order) -> tuple[str, int, int, str]:
    order.refresh_from_db()
    return (order.status, order.amount_paid, order.amount_refunded, order.payment_status)


def rows(order: Order) -> list[tuple[Any, ...]]:
    return list(
        order.refunds.order_by("stripe_refund_id").values_list(
            "stripe_refund_id", "amount", "status", "failure_reason", "origin"
        )
    )


def refund_timeline(order: Order) -> list[tuple[str, str, str]]:
    entries = order.events.filter(kind=OrderEvent.Kind.REFUND).order_by("pk")
    return [(e.data["from_status"], e.data["status"], e.message) for e in entries]


def test_a_dashboard_refund_refunds_the_order_and_shows_on_its_timeline(client: Client) -> None:
    order, intent_id = paid_order(client)
    refund = refund_object(order, intent_id, reason="requested_by_customer")

    event_id = send(client, "refund.created", refund)

    assert money(order) == ("paid", 4000, 4000, "refunded")
    row = order.refunds.get()
    assert (row.stripe_refund_id, row.amount, row.currency, row.status, row.origin) == (
        refund["id"], 4000, "usd", "succeeded", "stripe",
    )  # fmt: skip
    assert (row.payment.stripe_payment_intent_id, row.stripe_charge_id, row.reason) == (
        intent_id, refund["charge"], "requested_by_customer",
    )  # fmt: skip
    entry = order.events.get(kind=OrderEvent.Kind.REFUND)
    assert entry.stripe_event_id == event_id
    assert entry.message == (
        f"Refund {refund['id']} of 40.00 USD, made outside DjangoMart (Stripe Dashboard or "
        "another integration): succeeded."
    )
    assert (entry.data["amount"], entry.data["status"], entry.data["origin"]) == (
        4000, "succeeded", "stripe",
    )  # fmt: skip
    assert order.status == "paid"  # money facts never move the lifecycle


def test_a_partial_refund_then_the_rest_is_partially_refunded_then_refunded(
    client: Client,
) -> None:
    order, intent_id = paid_order(client)
    send(client, "refund.created", refund_object(order, intent_id, amount=1500))
    assert money(order) == ("paid", 4000, 1500, "partially_refunded")
    send(client, "refund.created", refund_object(order, intent_id, amount=2500))
    assert money(order) == ("paid", 4000, 4000, "refunded")
    assert sorted(r[1] for r in rows(order)) == [1500, 2500]


def test_a_pending_refund_counts_only_once_it_succeeds(client: Client) -> None:
    order, intent_id = paid_order(client)
    refund = refund_object(order, intent_id, amount=1000, status="pending")
    send(client, "refund.created", refund)
    assert money(order) == ("paid", 4000, 0, "paid")
    send(client, "refund.updated", {**refund, "status": "succeeded"})
    assert money(order) == ("paid", 4000, 1000, "partially_refunded")
    assert [t[:2] for t in refund_timeline(order)] == [("", "pending"), ("pending", "succeeded")]


def test_a_refund_that_fails_after_it_succeeded_gives_the_amount_back(client: Client) -> None:
    order, intent_id = paid_order(client)
    refund = refund_object(order, intent_id)
    send(client, "refund.updated", refund)
    assert money(order)[2:] == (4000, "refunded")
    failed = {**refund, "status": "failed", "failure_reason": "expired_or_canceled_card"}
    send(client, "refund.failed", failed)
    assert money(order) == ("paid", 4000, 0, "paid")
    assert rows(order) == [(refund["id"], 4000, "failed", "expired_or_canceled_card", "stripe")]
    assert refund_timeline(order)[-1][:2] == ("succeeded", "failed")
    assert refund_timeline(order)[-1][2].endswith(
        ": succeeded -> failed (expired_or_canceled_card)."
    )
    # Stripe's older snapshots, delivered late, change nothing.
    send(client, "refund.created", refund)
    send(client, "refund.updated", {**refund, "status": "pending"})
    assert rows(order) == [(refund["id"], 4000, "failed", "expired_or_canceled_card", "stripe")]
    assert money(order) == ("paid", 4000, 0, "paid")
    assert len(refund_timeline(order)) == 2


def test_a_refund_that_fails_flags_the_order_refund_failed_once(client: Client) -> None:
    """The customer was told money is coming back and it is not: a human must act."""
    order, intent_id = paid_order(client)
    refund = refund_object(order, intent_id, status="pending")
    send(client, "refund.created", refund)
    order.refresh_from_db()
    assert (order.needs_attention, order.attention_reasons) == (False, [])
    failed = {**refund, "status": "failed", "failure_reason": "lost_or_stolen_card"}
    send(client, "refund.failed", failed)
    send(client, "refund.updated", failed)  # Stripe sends both; the flag is raised once
    send(client, "refund.failed", failed)  # a repeated delivery
    order.refresh_from_db()
    assert (order.needs_attention, order.attention_reasons) == (True, ["refund_failed"])
    flags = order.events.filter(kind=OrderEvent.Kind.FLAGGED, data__reason="refund_failed")
    assert flags.count() == 1
    assert "lost_or_stolen_card" in flags.get().message


def test_an_older_event_never_undoes_a_newer_fact(client: Client) -> None:
    """refund.updated (succeeded) arrives first; the refund.created Stripe sent before it
    (pending) comes late."""
    order, intent_id = paid_order(client)
    refund = refund_object(order, intent_id, amount=1000)
    send(client, "refund.updated", refund, created=1_800_000_100)
    send(client, "refund.created", {**refund, "status": "pending"}, created=1_800_000_000)
    assert rows(order) == [(refund["id"], 1000, "succeeded", "", "stripe")]
    assert money(order) == ("paid", 4000, 1000, "partially_refunded")
    assert [t[:2] for t in refund_timeline(order)] == [("", "succeeded")]


@pytest.mark.parametrize("final", ["failed", "canceled"])
def test_a_failed_or_canceled_refund_never_changes_again(client: Client, final: str) -> None:
    order, intent_id = paid_order(client)
    refund = refund_object(order, intent_id, status=final, failure_reason="unknown")
    send(client, "refund.updated", refund)
    for status in ("pending", "requires_action", "succeeded", "failed", "canceled"):
        send(client, "refund.updated", {**refund, "status": status})
    assert rows(order) == [(refund["id"], 4000, final, "unknown", "stripe")]
    assert money(order)[2:] == (0, "paid")


def test_status_moves_only_forward() -> None:
    assert [s for s in Refund.Status if status_moves("pending", s)] == [
        "requires_action", "succeeded", "failed", "canceled",
    ]  # fmt: skip
    assert [s for s in Refund.Status if status_moves("succeeded", s)] == ["failed", "canceled"]
    assert not any(
        status_moves(final, s) for final in ("failed", "canceled") for s in Refund.Status
    )
    assert not status_moves("pending", "something_new")


def test_charge_refund_updated_carries_a_refund_and_is_applied_like_refund_updated(
    client: Client,
) -> None:
    order, intent_id = paid_order(client)
    refund = refund_object(order, intent_id, amount=500, status="pending")
    send(client, "refund.created", refund)
    event_id = send(client, "charge.refund.updated", {**refund, "status": "succeeded"})
    assert StripeEvent.objects.get(pk=event_id).status == "processed"
    assert money(order)[2:] == (500, "partially_refunded")


def test_charge_refunded_with_its_refund_list_records_every_refund(client: Client) -> None:
    order, intent_id = paid_order(client)
    first = refund_object(order, intent_id, amount=1000)
    second = refund_object(order, intent_id, amount=3000, status="pending")
    charge = refunded_charge_object(
        order, intent_id, amount_refunded=4000, refunds_data=[second, first]
    )
    send(client, "charge.refunded", charge)
    assert rows(order) == sorted(
        [
            (first["id"], 1000, "succeeded", "", "stripe"),
            (second["id"], 3000, "pending", "", "stripe"),
        ]
    )
    assert money(order)[2:] == (1000, "partially_refunded")
    # The total matches the refunds it listed: nothing to read from Stripe.
    assert not ProcrastinateJob.objects.filter(task_name="refunds_sync").exists()


def test_charge_refunded_without_a_list_queues_a_sync_only_when_its_total_is_not_known(
    client: Client,
) -> None:
    order, intent_id = paid_order(client)
    refund = refund_object(order, intent_id, amount=1000)
    send(client, "refund.created", refund)
    payload = event_json(
        "charge.refunded", refunded_charge_object(order, intent_id, amount_refunded=1000)
    )
    deliver(client, payload)
    assert not ProcrastinateJob.objects.filter(task_name="refunds_sync").exists()
    assert StripeEvent.objects.get(pk=event_id_of(payload)).status == "processed"


def test_our_own_refund_row_gets_stripes_answer_through_its_metadata(client: Client) -> None:
    """A refund DjangoMart asked for (its row committed before Stripe was called) whose
    answer never came back: its refund.created finds the row by metadata.refund_id."""
    order, intent_id = paid_order(client)
    staff = User.objects.create_user("alice", is_staff=True)
    ours = Refund.objects.create(
        order=order, payment=order.payments.get(), stripe_payment_intent_id=intent_id,
        amount=1000, currency="usd", origin=Refund.Origin.STAFF, requested_by=staff,
    )  # fmt: skip
    metadata = {"refund_id": str(ours.pk), "order_id": str(order.pk)}
    refund = refund_object(order, intent_id, amount=1000, status="pending", metadata=metadata)
    send(client, "refund.created", refund)
    ours.refresh_from_db()
    assert (ours.stripe_refund_id, ours.status, ours.origin) == (refund["id"], "pending", "staff")
    assert order.refunds.count() == 1
    assert refund_timeline(order) == [
        ("pending", "pending", f"Refund {refund['id']} of 10.00 USD, requested by alice: "
                               "now at Stripe, pending."),
    ]  # fmt: skip
    send(client, "refund.updated", {**refund, "status": "succeeded"})
    assert refund_timeline(order)[-1][2] == (
        f"Refund {refund['id']} of 10.00 USD, requested by alice: pending -> succeeded."
    )
    assert money(order)[2:] == (1000, "partially_refunded")


def test_metadata_naming_another_orders_refund_links_nothing(client: Client) -> None:
    order, intent_id = paid_order(client)
    other, other_intent = paid_order(client)
    theirs = Refund.objects.create(
        order=other, payment=other.payments.get(), stripe_payment_intent_id=other_intent,
        amount=1000, currency="usd", origin=Refund.Origin.STAFF,
    )  # fmt: skip
    refund = refund_object(order, intent_id, amount=1000, metadata={"refund_id": str(theirs.pk)})
    send(client, "refund.created", refund)
    theirs.refresh_from_db()
    assert theirs.stripe_refund_id is None
    assert rows(order) == [(refund["id"], 1000, "succeeded", "", "stripe")]


def test_refund_fact_records_nothing_about_another_orders_payment(client: Client) -> None:
    order, _ = paid_order(client)
    other, other_intent = paid_order(client)
    before = (Refund.objects.count(), OrderEvent.objects.count(), Payment.objects.count())
    with transaction.atomic():
        locked = orders_lock([order.pk])[order.pk]
        assert (
            refund_fact(locked, refund_object(other, other_intent), stripe_event_id="evt_x") is None
        )
        assert refund_fact(locked, refund_object(order, new_intent_id())) is None
    assert (Refund.objects.count(), OrderEvent.objects.count(), Payment.objects.count()) == before
    order.refresh_from_db()
    assert (order.needs_attention, order.amount_refunded) == (False, 0)


def test_a_sync_repeating_a_known_refund_writes_nothing(client: Client) -> None:
    order, intent_id = paid_order(client)
    refund = refund_object(order, intent_id, amount=1000)
    send(client, "refund.created", refund)

    def snapshot() -> Any:
        return (
            list(Order.objects.filter(pk=order.pk).values()),
            list(Refund.objects.values()),
            list(OrderEvent.objects.values_list("pk", flat=True)),
        )

    before = snapshot()
    with transaction.atomic():
        locked = orders_lock([order.pk])[order.pk]
        assert refund_fact(locked, refund) is not None
        assert refund_fact(locked, {**refund, "status": "pending"}) is not None
    assert snapshot() == before


def test_a_refund_in_another_currency_is_kept_but_not_counted(client: Client) -> None:
    order, intent_id = paid_order(client)
    send(client, "refund.created", refund_object(order, intent_id, amount=1000, currency="eur"))
    assert [(r.amount, r.currency) for r in order.refunds.all()] == [(1000, "eur")]
    assert money(order)[2:] == (0, "paid")


def test_a_dashboard_refund_delivered_before_the_session_waits_for_it(client: Client) -> None:
    """A Dashboard refund carries none of our metadata, so nothing ties it to an order
    until the order's own session names its PaymentIntent; then it is processed."""
    intent_id = new_intent_id()
    order = order_build()
    early = refund_object(order, intent_id, amount=1500)
    early_payload = event_json("refund.created", early)
    assert deliver(client, early_payload) == "unmatched"
    waiting = StripeEvent.objects.get(pk=event_id_of(early_payload))
    assert (waiting.order_id, waiting.payment_intent_id) == (None, intent_id)
    assert money(order) == ("pending", 0, 0, "unpaid")

    send(client, "checkout.session.completed", session_object(order, payment_intent=intent_id))

    assert StripeEvent.objects.get(pk=waiting.pk).status == "processed"
    assert money(order) == ("paid", 4000, 1500, "partially_refunded")
    assert rows(order) == [(early["id"], 1500, "succeeded", "", "stripe")]


def test_charge_refunded_delivered_before_the_session_waits_for_it(client: Client) -> None:
    """The charge carries the PaymentIntent's metadata (our order id): it finds the order,
    and waits there until the PaymentIntent is known to be the order's own."""
    intent_id = new_intent_id()
    order = order_build()
    refund = refund_object(order, intent_id)
    charge = refunded_charge_object(order, intent_id, amount_refunded=4000, refunds_data=[refund])
    payload = event_json("charge.refunded", charge)
    assert deliver(client, payload) == "unmatched"
    waiting = StripeEvent.objects.get(pk=event_id_of(payload))
    assert waiting.order_id == order.pk
    assert waiting.last_error.startswith(f"Waiting: PaymentIntent {intent_id}")

    send(client, "checkout.session.completed", session_object(order, payment_intent=intent_id))

    assert StripeEvent.objects.get(pk=waiting.pk).status == "processed"
    assert money(order) == ("paid", 4000, 4000, "refunded")


def test_a_refund_of_someone_elses_payment_intent_never_reaches_the_order(client: Client) -> None:
    """A refund whose PaymentIntent no session of ours named stays unmatched, even with
    our order id in its metadata."""
    order, _ = paid_order(client)
    stranger = refund_object(order, new_intent_id(), metadata={"order_id": str(order.pk)})
    payload = event_json("refund.created", stranger)
    assert deliver(client, payload) == "unmatched"
    assert money(order) == ("paid", 4000, 0, "paid")
    assert not order.refunds.exists()
