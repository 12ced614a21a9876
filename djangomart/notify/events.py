"""What the outbox knows how to say: one type per fact a shop's people or systems
want to hear about, and what makes two occurrences of one type different (the cause).

The cause is what keeps a side effect to once per (order, type, cause): the same fact
seen again (a duplicate Stripe event, a sync, a replay) finds its OutboxEvent already
there and sends nothing.
"""

from enum import StrEnum


class EventType(StrEnum):
    # The order's lifecycle (orders.transitions): each status is reached once, so the
    # cause is empty.
    ORDER_PAID = "order.paid"
    ORDER_FULFILLED = "order.fulfilled"
    ORDER_CANCELED = "order.canceled"
    ORDER_FAILED = "order.failed"
    ORDER_EXPIRED = "order.expired"
    # payment_status became `refunded` (all the money paid is back): cause empty.
    ORDER_REFUNDED = "order.refunded"
    # A reason newly raised (orders.services.order_flag): cause = the timeline entry's id, so
    # that a reason raised again after staff resolved it is heard again.
    ORDER_NEEDS_ATTENTION = "order.needs_attention"
    # cause = our Refund row's id.
    REFUND_SUCCEEDED = "refund.succeeded"
    # cause = Stripe's dispute id; opened when first seen, closed when it reaches a
    # closed status (both at once for a dispute first seen closed).
    DISPUTE_OPENED = "dispute.opened"
    DISPUTE_CLOSED = "dispute.closed"
    # cause = the Shipment's id (fulfillment).
    SHIPMENT_CREATED = "shipment.created"


# The lifecycle statuses that have an event type (orders.transitions._move emits them).
STATUS_EVENTS: dict[str, EventType] = {
    "paid": EventType.ORDER_PAID,
    "fulfilled": EventType.ORDER_FULFILLED,
    "canceled": EventType.ORDER_CANCELED,
    "failed": EventType.ORDER_FAILED,
    "expired": EventType.ORDER_EXPIRED,
}
