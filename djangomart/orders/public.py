"""The order as its customer sees it (OrderOut and its parts): one builder for the order
API, the checkout answer and the outbox's payloads (notify.payloads), so that a webhook
receiver gets exactly what the API shows."""

from djangomart.orders.models import Order
from djangomart.orders.schemas import (
    OrderDisputeOut,
    OrderLineOut,
    OrderOut,
    OrderRefundOut,
    ShippingAddressOut,
)
from djangomart.payments.models import Dispute, DisputeStatus, Refund, RefundStatus


def order_out(order: Order) -> OrderOut:
    """The order as its customer sees it; `order` comes from selectors.order_for_api."""
    disputes = [dispute_out(dispute) for dispute in order.disputes.all()]
    return OrderOut(
        id=order.id,
        status=order.status,
        payment_status=order.payment_status,
        currency=order.currency,
        total=order.total,
        amount_paid=order.amount_paid,
        amount_refunded=order.amount_refunded,
        disputed=order.disputed,
        dispute_lost=order.dispute_lost,
        amount_lost_to_disputes=order.amount_lost_to_disputes,
        needs_attention=order.needs_attention,
        fulfillment_status=order.fulfillment_status,
        lines=[
            OrderLineOut(
                sku=ln.sku,
                name=ln.name,
                unit_price=ln.unit_price,
                quantity=ln.quantity,
                line_total=ln.line_total,
                quantity_shipped=ln.quantity_shipped,
            )
            for ln in order.lines.all()
        ],
        refunds=[refund_out(refund) for refund in order.refunds.all()],
        disputes=disputes,
        dispute=_dispute_shown(disputes),
        shipping_address=(
            None
            if order.shipping_address is None
            else ShippingAddressOut.model_validate(order.shipping_address)
        ),
    )


def refund_out(refund: Refund) -> OrderRefundOut:
    return OrderRefundOut(
        id=refund.id,
        amount=refund.amount,
        currency=refund.currency,
        status=RefundStatus(refund.status),
        reason=refund.reason or None,
        created_at=refund.created_at,
    )


def dispute_out(dispute: Dispute) -> OrderDisputeOut:
    return OrderDisputeOut(
        id=dispute.stripe_dispute_id,
        status=DisputeStatus(dispute.status),
        amount=dispute.amount,
        currency=dispute.currency,
        reason=dispute.reason,
        evidence_due_by=dispute.evidence_due_by,
    )


def _dispute_shown(disputes: list[OrderDisputeOut]) -> OrderDisputeOut | None:
    """The dispute a client shows first: the open one (a payment has one dispute at a
    time), else the latest."""
    open_ones = [d for d in disputes if d.status in Dispute.OPEN]
    shown = open_ones or disputes
    return shown[-1] if shown else None
