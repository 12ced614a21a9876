"""The order lifecycle, in one table.

    pending -> paid -> fulfilled
    pending -> failed | expired | canceled

`apply` must run inside the transaction that holds the order's row lock
(orders.locks.orders_lock), so that two events can never both move the same order.
Every applied or refused transition is written to the order's timeline with the
Stripe event that caused it.
"""

from typing import Any

from django.contrib.auth.models import User

from djangomart.orders import stock
from djangomart.orders.models import Order, OrderEvent

Status = Order.Status

TRANSITIONS: dict[str, frozenset[str]] = {
    Status.PENDING: frozenset({Status.PAID, Status.FAILED, Status.EXPIRED, Status.CANCELED}),
    Status.PAID: frozenset({Status.FULFILLED}),
    Status.FULFILLED: frozenset(),
    Status.FAILED: frozenset(),
    Status.EXPIRED: frozenset(),
    Status.CANCELED: frozenset(),
}

# Leaving `pending` this way gives the reserved stock back; paid sells it
# (orders.stock). Every path to paid (webhook, sync, staff) comes through apply, and
# an order leaves `pending` once, so each happens once.
RELEASES_STOCK = frozenset({Status.FAILED, Status.EXPIRED, Status.CANCELED})


def can_transition(from_status: str, to_status: str) -> bool:
    return to_status in TRANSITIONS[from_status]


def apply(
    order: Order,
    to_status: str,
    *,
    stripe_event_id: str = "",
    message: str = "",
    staff_user: User | None = None,
    data: dict[str, Any] | None = None,
) -> bool:
    """Moves `order` (locked by the caller) to `to_status` if the table allows it.

    Returns whether it moved. Either way the attempt is on the timeline, with the Stripe
    event or the staff member that caused it.
    """
    from_status = order.status
    cause: dict[str, Any] = {
        "stripe_event_id": stripe_event_id,
        "staff_user": staff_user,
        "message": message,
        "data": data or {},
    }
    if not can_transition(from_status, to_status):
        OrderEvent.objects.create(
            order=order,
            kind=OrderEvent.Kind.TRANSITION_REFUSED,
            from_status=from_status,
            to_status=to_status,
            **cause,
        )
        return False
    order.status = to_status
    order.save(update_fields=["status", "updated_at"])
    OrderEvent.objects.create(
        order=order,
        kind=OrderEvent.Kind.TRANSITION,
        from_status=from_status,
        to_status=to_status,
        **cause,
    )
    if to_status in RELEASES_STOCK:
        stock.stock_release(order)
    elif from_status == Status.PENDING and to_status == Status.PAID:
        stock.stock_sell(order)
    return True
