"""Writes on orders that are not lifecycle transitions: flags and money facts.
Every function here expects the order to be locked by the caller."""

from djangomart.orders.models import Order, OrderEvent


def order_flag(order: Order, reason: str, *, stripe_event_id: str = "", message: str = "") -> None:
    """Marks the order as needing a human, with a stable reason code."""
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
