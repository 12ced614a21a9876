"""Disputes as facts: one Dispute row per Stripe dispute (or inquiry), upserted from every
`charge.dispute.*` event, and the order's dispute state derived from those rows.

Stripe sends a dispute's events in any order and any number of times, and every event
carries the whole dispute as it was when the event was created. The row keeps the newest
of those snapshots by one total order (`_snapshot_key`), so whichever events arrive,
in whatever order, the row ends the same:

1. a closed status (won, lost, warning_closed, prevented) beats an open one: a dispute
   never reopens, so an `updated` delivered after `closed` must not reopen it, even when
   clocks disagree;
2. then the event's `created` (whole seconds);
3. then a rank of the status in the dispute's life, for events created in the same
   second (created and funds_withdrawn are; so are updates made quickly);
4. then the event id, so that two snapshots are never equal.

`funds_withdrawn` and `funds_reinstated` only turn on, from the event types that say so.
"""

import logging
from datetime import UTC, datetime
from typing import Any

from djangomart.money import format_amount
from djangomart.notify.events import EventType
from djangomart.notify.payloads import dispute_public
from djangomart.notify.services import notify_enqueue
from djangomart.orders.models import Order, OrderEvent
from djangomart.orders.services import order_attention_clear, order_flag, order_note
from djangomart.payments.models import Dispute, DisputeStatus

logger = logging.getLogger(__name__)

CLOSED = frozenset(
    {DisputeStatus.WON, DisputeStatus.LOST, DisputeStatus.WARNING_CLOSED, DisputeStatus.PREVENTED}
)
# Where each status sits in a dispute's life: an inquiry (warning_*) may escalate to a
# chargeback, a response moves it under review, and it closes once.
STATUS_RANK = {
    DisputeStatus.WARNING_NEEDS_RESPONSE: 0,
    DisputeStatus.WARNING_UNDER_REVIEW: 1,
    DisputeStatus.NEEDS_RESPONSE: 2,
    DisputeStatus.UNDER_REVIEW: 3,
    DisputeStatus.WARNING_CLOSED: 4,
    DisputeStatus.PREVENTED: 5,
    DisputeStatus.WON: 6,
    DisputeStatus.LOST: 7,
}

FUNDS_WITHDRAWN = "charge.dispute.funds_withdrawn"
FUNDS_REINSTATED = "charge.dispute.funds_reinstated"

# The attention reasons this module raises (orders.services.order_flag).
REASON_OPEN = "dispute_open"
REASON_LOST = "dispute_lost"

SnapshotKey = tuple[bool, datetime, int, str]


class DisputeObjectInvalid(ValueError):
    """A `charge.dispute.*` event whose object DjangoMart cannot record (the event then
    fails, is retried and ends `dead` in the admin, rather than being silently dropped)."""


def _snapshot_key(status: str, created: datetime, event_id: str) -> SnapshotKey:
    return (status in CLOSED, created, STATUS_RANK[DisputeStatus(status)], event_id)


def _row_key(dispute: Dispute) -> SnapshotKey:
    created = dispute.snapshot_created or datetime.min.replace(tzinfo=UTC)
    return _snapshot_key(dispute.status, created, dispute.snapshot_event_id)


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return datetime.fromtimestamp(value, UTC)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _snapshot(obj: dict[str, Any]) -> dict[str, Any]:
    """The fields of the row that come from one snapshot of the dispute."""
    status = obj.get("status")
    if status not in DisputeStatus.values:
        raise DisputeObjectInvalid(f"Dispute {obj.get('id')} has an unknown status {status!r}.")
    amount = obj.get("amount")
    currency = obj.get("currency")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise DisputeObjectInvalid(f"Dispute {obj.get('id')} has no valid amount.")
    if not isinstance(currency, str) or len(currency) != 3:
        raise DisputeObjectInvalid(f"Dispute {obj.get('id')} has no valid currency.")
    details = obj.get("evidence_details")
    due_by = _timestamp(details.get("due_by")) if isinstance(details, dict) else None
    return {
        "status": status,
        "amount": amount,
        "currency": currency.lower(),
        "reason": _text(obj.get("reason"))[:64],
        "evidence_due_by": due_by,
        "is_charge_refundable": obj.get("is_charge_refundable") is True,
        "stripe_charge_id": _text(obj.get("charge")),
    }


def _describe(dispute: Dispute) -> str:
    kind = "Inquiry" if dispute.status.startswith("warning_") else "Dispute"
    return f"{kind} {dispute.stripe_dispute_id} ({format_amount(dispute.amount, dispute.currency)})"


def dispute_fact(
    order: Order,
    obj: dict[str, Any],
    *,
    event_type: str,
    stripe_event_id: str,
    event_created: datetime,
) -> Dispute | None:
    """Records what one `charge.dispute.*` event says about a dispute of `order` (locked
    by the caller, who checked that the event is about the order's own PaymentIntent).

    Returns the row, or None when the dispute is not about a PaymentIntent that has a
    Payment row of this order (nothing is written). The timeline gets an entry when the
    dispute is first seen, when its status changes and when funds are withdrawn or
    reinstated; an event that teaches nothing new writes nothing."""
    dispute_id = _text(obj.get("id"))
    intent_id = _text(obj.get("payment_intent"))
    payment = (
        order.payments.filter(stripe_payment_intent_id=intent_id).first() if intent_id else None
    )
    if not dispute_id or payment is None:
        logger.warning(
            "dispute not about a payment of its order",
            extra={"dispute": dispute_id, "payment_intent": intent_id, "order": str(order.pk)},
        )
        return None
    snapshot = _snapshot(obj)
    withdrawn = event_type == FUNDS_WITHDRAWN
    reinstated = event_type == FUNDS_REINSTATED
    key = _snapshot_key(snapshot["status"], event_created, stripe_event_id)

    dispute = Dispute.objects.filter(stripe_dispute_id=dispute_id).first()
    if dispute is not None and dispute.order_id != order.pk:
        # The same PaymentIntent cannot belong to two orders (Payment is unique on it),
        # so this is a dispute whose object changed PaymentIntent: never move it.
        raise DisputeObjectInvalid(f"Dispute {dispute_id} already belongs to another order.")
    notes: list[tuple[str, dict[str, Any]]] = []
    first_seen = dispute is None
    status_changed = first_seen
    if dispute is None:
        dispute = Dispute(
            stripe_dispute_id=dispute_id,
            order=order,
            payment=payment,
            stripe_payment_intent_id=intent_id,
            stripe_created=_timestamp(obj.get("created")),
            snapshot_event_id=stripe_event_id,
            snapshot_created=event_created,
            funds_withdrawn=withdrawn,
            funds_reinstated=reinstated,
            **snapshot,
        )
        dispute.save()
        notes.append(_opened_note(dispute))
        if withdrawn:
            notes.append(_funds_note(dispute, withdrawn=True))
        if reinstated:
            notes.append(_funds_note(dispute, withdrawn=False))
    else:
        changed: list[str] = []
        old_status = dispute.status
        if key > _row_key(dispute):
            for field, value in snapshot.items():
                if getattr(dispute, field) != value:
                    setattr(dispute, field, value)
                    changed.append(field)
            dispute.snapshot_event_id = stripe_event_id
            dispute.snapshot_created = event_created
            changed += ["snapshot_event_id", "snapshot_created"]
        if withdrawn and not dispute.funds_withdrawn:
            dispute.funds_withdrawn = True
            changed.append("funds_withdrawn")
            notes.append(_funds_note(dispute, withdrawn=True))
        if reinstated and not dispute.funds_reinstated:
            dispute.funds_reinstated = True
            changed.append("funds_reinstated")
            notes.append(_funds_note(dispute, withdrawn=False))
        if not changed:
            return dispute
        dispute.save(update_fields=[*changed, "updated_at"])
        if dispute.status != old_status:
            status_changed = True
            notes.insert(0, _status_note(dispute, old_status))
    for message, data in notes:
        order_note(
            order,
            OrderEvent.Kind.DISPUTE,
            message,
            stripe_event_id=stripe_event_id,
            dispute=dispute.stripe_dispute_id,
            status=dispute.status,
            event_type=event_type,
            **data,
        )
    # Imported here: facts imports this module for the derivation.
    from djangomart.payments.facts import order_money_refresh

    order_money_refresh(order)
    if first_seen:
        notify_enqueue(
            EventType.DISPUTE_OPENED,
            order,
            cause=dispute.stripe_dispute_id,
            objects={"dispute": dispute_public(dispute)},
        )
    if status_changed and not dispute.is_open:
        notify_enqueue(
            EventType.DISPUTE_CLOSED,
            order,
            cause=dispute.stripe_dispute_id,
            objects={"dispute": dispute_public(dispute)},
        )
    return dispute


def _due(dispute: Dispute) -> str:
    if dispute.evidence_due_by is None:
        return ""
    return f" Evidence due by {dispute.evidence_due_by:%Y-%m-%d %H:%M} UTC."


def _opened_note(dispute: Dispute) -> tuple[str, dict[str, Any]]:
    reason = f", reason {dispute.reason}" if dispute.reason else ""
    if dispute.status in CLOSED:
        return f"{_describe(dispute)}{reason}: first seen already {dispute.status}.", {}
    return f"{_describe(dispute)} opened{reason}: {dispute.status}.{_due(dispute)}", {}


_CLOSED_MEANING = {
    DisputeStatus.WON: "the money is back",
    DisputeStatus.LOST: "the bank keeps the money (not a refund)",
    DisputeStatus.WARNING_CLOSED: "the inquiry ended without a chargeback",
    DisputeStatus.PREVENTED: "prevented before it became a chargeback",
}


def _status_note(dispute: Dispute, old_status: str) -> tuple[str, dict[str, Any]]:
    if dispute.status in CLOSED:
        meaning = _CLOSED_MEANING[DisputeStatus(dispute.status)]
        message = f"{_describe(dispute)} closed: {dispute.status}, {meaning}."
    else:
        message = f"{_describe(dispute)}: {old_status} -> {dispute.status}.{_due(dispute)}"
    return message, {"from_status": old_status}


def _funds_note(dispute: Dispute, *, withdrawn: bool) -> tuple[str, dict[str, Any]]:
    amount = format_amount(dispute.amount, dispute.currency)
    if withdrawn:
        return f"{amount} withdrawn from the balance for dispute {dispute.stripe_dispute_id}.", {}
    return f"{amount} reinstated to the balance: dispute {dispute.stripe_dispute_id}.", {}


def order_disputes_derive(order: Order) -> None:
    """The dispute part of the order's money state (called by facts.order_money_refresh,
    order locked): `disputed` while any dispute is open, `dispute_lost` and
    `amount_lost_to_disputes` (order currency) from lost ones. Lost money is not a
    refund: amount_refunded and payment_status do not count it.

    Attention follows the facts: `dispute_open` is raised when the order becomes
    disputed and removed by itself when no dispute is open any more; `dispute_lost` is
    raised when the first lost dispute is recorded and stays until staff resolve it. A
    refresh that changes nothing writes nothing."""
    disputes = list(order.disputes.all())
    open_ = [d for d in disputes if d.is_open]
    lost = [d for d in disputes if d.status == DisputeStatus.LOST]
    disputed = bool(open_)
    dispute_lost = bool(lost)
    amount_lost = sum(d.amount for d in lost if d.currency == order.currency)
    was_disputed, was_lost = order.disputed, order.dispute_lost
    if (was_disputed, was_lost, order.amount_lost_to_disputes) == (
        disputed,
        dispute_lost,
        amount_lost,
    ):
        return
    order.disputed = disputed
    order.dispute_lost = dispute_lost
    order.amount_lost_to_disputes = amount_lost
    order.save(update_fields=["disputed", "dispute_lost", "amount_lost_to_disputes", "updated_at"])
    if disputed and not was_disputed:
        first = min(open_, key=lambda d: (d.evidence_due_by is None, d.evidence_due_by, d.pk))
        order_flag(
            order,
            REASON_OPEN,
            stripe_event_id=first.snapshot_event_id,
            message=f"{_describe(first)} is open ({first.status}): respond at Stripe.{_due(first)}",
        )
    elif was_disputed and not disputed:
        outcome = ", ".join(f"{d.stripe_dispute_id} {d.status}" for d in disputes)
        order_attention_clear(
            order, REASON_OPEN, message=f"No dispute is open any more ({outcome})."
        )
    if dispute_lost and not was_lost:
        newest = max(lost, key=lambda d: (d.snapshot_created or d.created_at, d.pk))
        total = format_amount(amount_lost, order.currency)
        order_flag(
            order,
            REASON_LOST,
            stripe_event_id=newest.snapshot_event_id,
            message=f"{_describe(newest)} lost: {total} lost to disputes (not a refund).",
        )
