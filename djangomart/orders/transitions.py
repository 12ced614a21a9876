"""The order lifecycle, in one table.

    pending -> paid -> fulfilled
    pending -> failed | expired | canceled
    failed | expired | canceled -> paid      (a late payment accepted, only)

`apply` must run inside the transaction that holds the order's row lock
(orders.locks.orders_lock), so that two events can never both move the same order.
Every applied or refused transition is written to the order's timeline with the
Stripe event that caused it.

Each transition in the table names who may take it. `apply`, which every ordinary
caller uses (webhook facts, checkout, the sync, reconciliation, staff actions), takes
only the `ANY` ones and refuses the others as it refuses a transition that is not in
the table. The way back from an ended order to `paid` is `LATE_PAYMENT` only: taken by
`late_payment_accept`, which LATE_PAYMENT_POLICY=accept calls (payments.late_payments)
after it re-reserved the order's stock; nothing else can revive an ended order.
"""

from enum import StrEnum
from typing import Any

from django.contrib.auth.models import User

from djangomart.notify.events import STATUS_EVENTS
from djangomart.notify.services import notify_enqueue
from djangomart.orders import stock
from djangomart.orders.models import Order, OrderEvent

Status = Order.Status


class Via(StrEnum):
    """Who may take a transition."""

    ANY = "any"  # transitions.apply
    LATE_PAYMENT = "late_payment"  # transitions.late_payment_accept only


TRANSITIONS: dict[str, dict[str, Via]] = {
    Status.PENDING: {
        Status.PAID: Via.ANY,
        Status.FAILED: Via.ANY,
        Status.EXPIRED: Via.ANY,
        Status.CANCELED: Via.ANY,
    },
    Status.PAID: {Status.FULFILLED: Via.ANY},
    Status.FULFILLED: {},
    Status.FAILED: {Status.PAID: Via.LATE_PAYMENT},
    Status.EXPIRED: {Status.PAID: Via.LATE_PAYMENT},
    Status.CANCELED: {Status.PAID: Via.LATE_PAYMENT},
}

# Leaving `pending` this way gives the reserved stock back; paid sells it
# (orders.stock). Every path to paid (webhook, sync, staff) comes through apply, and
# an order leaves `pending` once, so each happens once. A late payment accepted
# reserves the stock again before it sells it (late_payment_accept), once: the order
# is then paid, and nothing leads back to an ended status.
RELEASES_STOCK = frozenset({Status.FAILED, Status.EXPIRED, Status.CANCELED})


def can_transition(from_status: str, to_status: str, *, via: Via = Via.ANY) -> bool:
    """Whether the table lets `via` move an order from `from_status` to `to_status`."""
    return TRANSITIONS[from_status].get(to_status) == via


def _cause(
    stripe_event_id: str, staff_user: User | None, message: str, data: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "stripe_event_id": stripe_event_id,
        "staff_user": staff_user,
        "message": message,
        "data": data or {},
    }


def apply(
    order: Order,
    to_status: str,
    *,
    stripe_event_id: str = "",
    message: str = "",
    staff_user: User | None = None,
    data: dict[str, Any] | None = None,
) -> bool:
    """Moves `order` (locked by the caller) to `to_status` if the table allows it to
    any caller (Via.ANY).

    Returns whether it moved. Either way the attempt is on the timeline, with the Stripe
    event or the staff member that caused it.
    """
    from_status = order.status
    cause = _cause(stripe_event_id, staff_user, message, data)
    if not can_transition(from_status, to_status):
        OrderEvent.objects.create(
            order=order,
            kind=OrderEvent.Kind.TRANSITION_REFUSED,
            from_status=from_status,
            to_status=to_status,
            **cause,
        )
        return False
    _move(order, to_status, cause)
    if to_status in RELEASES_STOCK:
        stock.stock_release(order)
    elif from_status == Status.PENDING and to_status == Status.PAID:
        stock.stock_sell(order)
    return True


def _move(order: Order, to_status: str, cause: dict[str, Any]) -> None:
    from_status = order.status
    order.status = to_status
    order.save(update_fields=["status", "updated_at"])
    OrderEvent.objects.create(
        order=order,
        kind=OrderEvent.Kind.TRANSITION,
        from_status=from_status,
        to_status=to_status,
        **cause,
    )
    event_type = STATUS_EVENTS.get(to_status)
    if event_type is not None:
        notify_enqueue(event_type, order)


def late_payment_accept(
    order: Order, *, stripe_event_id: str, message: str, data: dict[str, Any] | None = None
) -> list[stock.Shortage]:
    """A late payment accepted (LATE_PAYMENT_POLICY=accept): the ended `order` (locked
    by the caller) reserves its stock again, all lines or none, and moves to `paid`,
    which sells the reservation as for any paid order.

    Returns the lines short of stock (nothing changed, no transition tried: the caller
    refunds the money instead); an empty list when the order is now paid. Raises
    ValueError for an order the table does not let a late payment revive (pending,
    paid, fulfilled): the caller decides only about ended orders."""
    from_status = order.status
    if not can_transition(from_status, Status.PAID, via=Via.LATE_PAYMENT):
        raise ValueError(f"a late payment cannot move a {from_status} order to paid")
    shortages = stock.stock_reserve_again(order)
    if shortages:
        return shortages
    _move(order, Status.PAID, _cause(stripe_event_id, None, message, data))
    stock.stock_sell(order)
    return []
