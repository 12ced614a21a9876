"""Refund facts: one `Refund` row per Stripe refund, whoever started it, upserted from
whatever tells us about it (refund.* events, charge.refunded, Stripe's answer to our
own request, the refund list read by a sync), in any order, any number of times.

A refund's status only moves forward (STATUS_RANK): an older snapshot of a refund never
undoes a newer one. The order's money fields are derived from the rows by the one
derivation, facts.order_money_refresh.
"""

import logging
import uuid
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from django.db import transaction

from djangomart.money import format_amount
from djangomart.notify.events import EventType
from djangomart.notify.payloads import refund_public
from djangomart.notify.services import notify_enqueue
from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order, OrderEvent
from djangomart.orders.services import order_flag, order_note
from djangomart.payments import facts, gateway, ownership
from djangomart.payments.models import Refund

logger = logging.getLogger(__name__)

RefundStatus = Refund.Status

# Forward only. A succeeded refund may still fail (Stripe does it when the card can no
# longer take the money back); a failed or canceled one is final.
STATUS_RANK = {
    RefundStatus.PENDING: 0,
    RefundStatus.REQUIRES_ACTION: 1,
    RefundStatus.SUCCEEDED: 2,
    RefundStatus.FAILED: 3,
    RefundStatus.CANCELED: 3,
}
FINAL = frozenset({RefundStatus.FAILED, RefundStatus.CANCELED})


def status_moves(current: str, new: str) -> bool:
    """Whether a refund in `current` may become `new` (an unknown status never counts)."""
    if new not in STATUS_RANK or new == current or current in FINAL:
        return False
    return STATUS_RANK[RefundStatus(new)] > STATUS_RANK[RefundStatus(current)]


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _id_of(value: Any) -> str:
    """A Stripe reference, whether sent as an id or as the expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return _str(value)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _our_refund_id(obj: dict[str, Any]) -> UUID | None:
    """metadata.refund_id: our Refund.id, put there by gateway.refund_create."""
    metadata = obj.get("metadata")
    raw = metadata.get("refund_id") if isinstance(metadata, dict) else None
    if not isinstance(raw, str):
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


def _find(
    order: Order, stripe_refund_id: str, intent_id: str, obj: dict[str, Any]
) -> Refund | None:
    """The row this Stripe refund already has: by its Stripe id, else the row of this
    order that our request created (metadata.refund_id, with the same amount and
    currency) and that Stripe's answer has not reached yet. A row of another order, or
    one already holding another Stripe refund, is not this refund's."""
    row = Refund.objects.filter(stripe_refund_id=stripe_refund_id).first()
    if row is not None:
        return row
    our_id = _our_refund_id(obj)
    if our_id is None:
        return None
    # The metadata is only a claim (anyone with access to the account can write it): the
    # refund must also be what we asked for, the same amount in the same currency, or it
    # would take over our row, which then never gets sent (the recovery job skips rows
    # with a Stripe id) while the order counts our amount instead of Stripe's.
    amount, currency = obj.get("amount"), _str(obj.get("currency")).lower()
    return Refund.objects.filter(
        pk=our_id,
        order=order,
        stripe_refund_id__isnull=True,
        stripe_payment_intent_id=intent_id,
        amount=amount if type(amount) is int else -1,
        currency=currency,
    ).first()


def _started_by(refund: Refund) -> str:
    if refund.origin == Refund.Origin.STAFF:
        return f"requested by {refund.requested_by or 'staff'}"
    if refund.origin == Refund.Origin.POLICY:
        return "made by the late-payment policy"
    return "made outside DjangoMart (Stripe Dashboard or another integration)"


def refund_fact(order: Order, obj: dict[str, Any], *, stripe_event_id: str = "") -> Refund | None:
    """Upserts one Stripe refund object for `order` (locked by the caller) and derives the
    order's money fields again. Returns the row, or None when the refund is not about one
    of the order's own payments (nothing is written, nothing flagged: the caller decides
    about ownership, this only refuses to record someone else's refund).

    Found by `stripe_refund_id`, else by metadata.refund_id (a refund DjangoMart asked
    for, whose answer had not come back yet), else created with origin `stripe`. Amount
    and currency are the row's own; the status only moves forward (status_moves). The
    timeline gets an entry when the refund is first seen at Stripe and whenever its
    status changes; a sync (no Stripe event) that learns nothing writes nothing."""
    stripe_refund_id = _str(obj.get("id"))
    intent_id = _id_of(obj.get("payment_intent"))
    if not stripe_refund_id or not ownership.intent_is_own(order, intent_id):
        return None
    row = _find(order, stripe_refund_id, intent_id, obj)
    if row is not None and row.order_id != order.pk:
        return None
    status = _str(obj.get("status"))
    if status not in STATUS_RANK:
        logger.warning(
            "refund with an unknown status",
            extra={"stripe_refund_id": stripe_refund_id, "status": status},
        )
    charge_id = _id_of(obj.get("charge"))
    failure_reason = _str(obj.get("failure_reason"))
    stripe_created = _time(obj.get("created"))
    first_seen = row is None or row.stripe_refund_id is None
    from_status = row.status if row is not None else ""
    if row is None:
        amount, currency = obj.get("amount"), _str(obj.get("currency")).lower()
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0 or not currency:
            logger.warning("refund without an amount", extra={"stripe_refund_id": stripe_refund_id})
            return None
        payment = facts.payment_intent_row(order, intent_id)
        if payment is None:
            return None
        row = Refund(
            order=order,
            payment=payment,
            stripe_payment_intent_id=intent_id,
            amount=amount,
            currency=currency,
            origin=Refund.Origin.STRIPE,
            status=status if status in STATUS_RANK else RefundStatus.PENDING,
        )
    known = _snapshot(row)
    if status_moves(row.status, status):
        row.status = status
    row.stripe_refund_id = stripe_refund_id
    row.stripe_charge_id = row.stripe_charge_id or charge_id
    row.reason = row.reason or _str(obj.get("reason"))
    if row.status in FINAL:
        row.failure_reason = row.failure_reason or failure_reason
    row.stripe_created = row.stripe_created or stripe_created
    changed = row._state.adding or _snapshot(row) != known
    if changed:
        row.save()
    if first_seen or row.status != from_status:
        _timeline(order, row, from_status=from_status, stripe_event_id=stripe_event_id)
    if row.status in FINAL and row.status != from_status:
        # The customer was told money is coming back, and it is not: someone must act
        # (pay it back another way, or refund again once the cause is fixed).
        order_flag(
            order,
            "refund_failed",
            stripe_event_id=stripe_event_id,
            message=f"Refund {row.stripe_refund_id} of {format_amount(row.amount, row.currency)} "
            f"{row.status} at Stripe ({row.failure_reason or 'no reason given'}).",
        )
    facts.order_money_refresh(order)  # writes only what changed
    if row.status == RefundStatus.SUCCEEDED and from_status != RefundStatus.SUCCEEDED:
        notify_enqueue(
            EventType.REFUND_SUCCEEDED,
            order,
            cause=str(row.pk),
            objects={"refund": refund_public(row)},
        )
    return row


def _snapshot(row: Refund) -> tuple[Any, ...]:
    return (row.stripe_refund_id, row.stripe_charge_id, row.reason, row.status,
            row.failure_reason, row.stripe_created)  # fmt: skip


def _timeline(order: Order, row: Refund, *, from_status: str, stripe_event_id: str) -> None:
    amount = format_amount(row.amount, row.currency)
    what = f"Refund {row.stripe_refund_id} of {amount}, {_started_by(row)}"
    if not from_status:
        message = f"{what}: {row.status}."
    elif from_status == row.status:
        message = f"{what}: now at Stripe, {row.status}."
    else:
        message = f"{what}: {from_status} -> {row.status}."
    if row.failure_reason and row.status in FINAL:
        message = f"{message[:-1]} ({row.failure_reason})."
    order_note(
        order,
        OrderEvent.Kind.REFUND,
        message,
        stripe_event_id=stripe_event_id,
        refund=str(row.pk),
        stripe_refund_id=row.stripe_refund_id,
        amount=row.amount,
        currency=row.currency,
        from_status=from_status,
        status=row.status,
        origin=row.origin,
        requested_by=row.requested_by.get_username() if row.requested_by else None,
        failure_reason=row.failure_reason,
    )


def charge_refunded(order: Order, charge: dict[str, Any], *, stripe_event_id: str) -> bool:
    """`charge.refunded` for `order` (locked): upserts the refunds the charge carries (older
    API versions list them; since 2022-11-15 the list is not sent) and, when the charge's
    cumulative `amount_refunded` still differs from the refunds known for it, queues the
    job that reads the PaymentIntent's refunds from Stripe (refunds_sync, no lock held
    while it reads). Returns whether the job was queued."""
    intent_id = _id_of(charge.get("payment_intent"))
    charge_id = _str(charge.get("id"))
    if not charge_id or not ownership.intent_is_own(order, intent_id):
        return False
    listed = charge.get("refunds")
    data = listed.get("data") if isinstance(listed, dict) else None
    for item in data if isinstance(data, list) else []:
        if isinstance(item, dict):
            refund_fact(order, item, stripe_event_id=stripe_event_id)
    total = charge.get("amount_refunded")
    if not isinstance(total, int) or total == refunds_held_at_stripe(charge_id):
        return False
    return refunds_sync_queue(order, intent_id)


def refunds_held_at_stripe(charge_id: str) -> int:
    """What Stripe's `charge.amount_refunded` should say from the rows we have: refunds of
    the charge that Stripe has and that are pending or went through (a failed or canceled
    refund gives its amount back to the charge)."""
    rows = Refund.objects.filter(
        stripe_charge_id=charge_id, stripe_refund_id__isnull=False, status__in=Refund.HELD
    )
    return sum(rows.values_list("amount", flat=True))


def refunds_sync_queue(order: Order, intent_id: str) -> bool:
    """Queues refunds_sync for the PaymentIntent in the caller's transaction, unless one is
    already waiting (which will read the newest list anyway)."""
    from procrastinate.exceptions import AlreadyEnqueued

    from djangomart.payments.tasks import refunds_sync_task

    try:
        with transaction.atomic():  # savepoint: a refused defer must not abort the caller
            refunds_sync_task.configure(queueing_lock=f"refunds_sync:{intent_id}").defer(
                order_id=str(order.pk), payment_intent_id=intent_id
            )
    except AlreadyEnqueued:
        return False
    return True


def refunds_sync(*, order_id: UUID, payment_intent_id: str) -> int:
    """Reads every refund of the order's PaymentIntent from Stripe (no lock, no
    transaction held), then upserts each under the order's lock. Only refunds of that
    PaymentIntent, and only if it is the order's own, are recorded. Returns how many
    refunds were read. Stripe unreachable: GatewayError, and the job retries."""
    listed = gateway.refunds_list(payment_intent_id)
    with transaction.atomic():
        order = orders_lock([order_id]).get(order_id)
        if order is None or not ownership.intent_is_own(order, payment_intent_id):
            return 0
        # Oldest first, so the timeline tells the refunds in the order they were made.
        for obj in reversed(listed):
            if _id_of(obj.get("payment_intent")) == payment_intent_id:
                refund_fact(order, obj)
    return len(listed)
