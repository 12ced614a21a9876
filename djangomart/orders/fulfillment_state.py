"""An order's fulfillment_status, derived from its lines in one place: shipments
(fulfillment.services) and returns that withdraw unshipped units (orders.returns) both
change what is left to ship.

    unfulfilled  nothing shipped yet
    partial      some units shipped, some still to ship
    fulfilled    something shipped and nothing is left to ship

A paid order whose status becomes `fulfilled` moves to the lifecycle status
`fulfilled` (transitions.apply, which emits order.fulfilled once)."""

from typing import Any

from django.contrib.auth.models import User

from djangomart.orders import transitions
from djangomart.orders.models import FulfillmentStatus, Order, OrderLine


def fulfillment_status_of(lines: list[OrderLine]) -> str:
    shipped = sum(line.quantity_shipped for line in lines)
    if shipped == 0:
        return FulfillmentStatus.UNFULFILLED
    if all(line.quantity_to_ship == 0 for line in lines):
        return FulfillmentStatus.FULFILLED
    return FulfillmentStatus.PARTIAL


def fulfillment_status_refresh(order: Order) -> str:
    """Derives `order`'s fulfillment_status again from its lines (read afresh: the
    caller has just changed them) and saves it if it changed. Order locked."""
    lines = list(OrderLine.objects.filter(order=order).order_by("pk"))
    status = fulfillment_status_of(lines)
    if status != order.fulfillment_status:
        order.fulfillment_status = status
        order.save(update_fields=["fulfillment_status", "updated_at"])
    return status


def fulfillment_complete(
    order: Order, *, staff_user: User | None, message: str, data: dict[str, Any] | None = None
) -> bool:
    """Moves a paid order whose fulfillment_status is `fulfilled` to the status
    `fulfilled` (order.fulfilled). Order locked. Returns whether it moved now."""
    if order.fulfillment_status != FulfillmentStatus.FULFILLED or order.status != Order.Status.PAID:
        return False
    return transitions.apply(
        order, Order.Status.FULFILLED, staff_user=staff_user, message=message, data=data
    )


def fulfillment_refresh(
    order: Order,
    *,
    staff_user: User | None,
    message: str,
    data: dict[str, Any] | None = None,
) -> bool:
    """fulfillment_status_refresh, then fulfillment_complete. The order must be locked by
    the caller. Returns whether the order moved to `fulfilled` now."""
    fulfillment_status_refresh(order)
    return fulfillment_complete(order, staff_user=staff_user, message=message, data=data)
