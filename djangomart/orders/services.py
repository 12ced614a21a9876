"""Writes on orders that are not lifecycle transitions: flags and notes. Functions that
take an `order` expect it locked by the caller (money facts live in payments.facts)."""

from uuid import UUID

from django.db import transaction

from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order, OrderEvent


def order_flag(order: Order, reason: str, *, stripe_event_id: str = "", message: str = "") -> None:
    """Marks the order as needing a human, with a stable reason code. A flag already
    raised is not written again by a sync or reconciliation (no Stripe event), nor by
    the same Stripe event twice: repeating a known fact writes nothing."""
    if reason in order.attention_reasons and (
        not stripe_event_id
        or order.events.filter(
            kind=OrderEvent.Kind.FLAGGED, stripe_event_id=stripe_event_id, data__reason=reason
        ).exists()
    ):
        return
    if reason not in order.attention_reasons:
        order.attention_reasons = [*order.attention_reasons, reason]
    order.needs_attention = True
    order.save(update_fields=["needs_attention", "attention_reasons", "updated_at"])
    OrderEvent.objects.create(
        order=order,
        kind=OrderEvent.Kind.FLAGGED,
        stripe_event_id=stripe_event_id,
        message=message or reason,
        data={"reason": reason},
    )


def order_note(
    order: Order, kind: str, message: str, *, stripe_event_id: str = "", **data: object
) -> None:
    OrderEvent.objects.create(
        order=order, kind=kind, stripe_event_id=stripe_event_id, message=message, data=data
    )


@transaction.atomic
def order_attention_resolve(*, order_id: UUID, by: str) -> None:
    """Staff acted on what the order was flagged for: clear the flag, keep the history."""
    order = orders_lock([order_id])[order_id]
    reasons = order.attention_reasons
    order.needs_attention = False
    order.attention_reasons = []
    order.save(update_fields=["needs_attention", "attention_reasons", "updated_at"])
    order_note(order, OrderEvent.Kind.NOTE, f"Attention resolved by {by}.", reasons=reasons)
