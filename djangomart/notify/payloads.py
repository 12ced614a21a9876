"""The body of an outbox event: what an outbound webhook receiver gets, and what an
email is written from. Built in the fact's transaction, from the database as that
transaction sees it."""

from datetime import datetime
from typing import Any
from uuid import UUID

from djangomart.orders.models import Order
from djangomart.orders.selectors import order_for_api
from djangomart.payments.models import Dispute, Refund

# orders.public is imported where it is used: its schemas import the checkout, whose
# transitions call the outbox.


def order_public(order_id: UUID) -> dict[str, Any]:
    """The order as the order API shows it (OrderOut), as JSON-ready data. Read afresh
    rather than from the caller's instance: the caller may hold prefetched relations
    that this transaction has since changed."""
    from djangomart.orders.public import order_out

    return order_out(order_for_api(Order.objects.get(pk=order_id))).model_dump(mode="json")


def event_payload(
    *,
    event_id: UUID,
    event_type: str,
    created: datetime,
    order_id: UUID,
    objects: dict[str, Any] | None,
) -> dict[str, Any]:
    """{"id", "type", "created", "data": {"order": OrderOut, ...objects}}: `objects`
    adds the refund, dispute or shipment the event is about, under its own key."""
    data: dict[str, Any] = {"order": order_public(order_id)}
    data.update(objects or {})
    return {
        "id": str(event_id),
        "type": event_type,
        "created": created.isoformat(),
        "data": data,
    }


def refund_public(refund: Refund) -> dict[str, Any]:
    """A refund as the order API shows it (OrderRefundOut)."""
    from djangomart.orders.public import refund_out

    return refund_out(refund).model_dump(mode="json")


def dispute_public(dispute: Dispute) -> dict[str, Any]:
    """A dispute as the order API shows it (OrderDisputeOut)."""
    from djangomart.orders.public import dispute_out

    return dispute_out(dispute).model_dump(mode="json")
