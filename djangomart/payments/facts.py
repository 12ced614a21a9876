"""Money facts: what Stripe told us about each PaymentIntent, upserted by id, and the
order's money fields derived from them. Facts only accumulate (flags turn on,
amounts grow), so the same facts in any order, any number of times, give the same
result, and `paid` never regresses."""

from djangomart.orders import transitions
from djangomart.orders.models import Order, OrderEvent
from djangomart.orders.services import order_flag, order_note
from djangomart.payments.models import Payment

Status = Order.Status
PaymentStatus = Order.PaymentStatus


def _payment(order: Order, intent_id: str) -> Payment:
    payment, _ = Payment.objects.get_or_create(
        stripe_payment_intent_id=intent_id, defaults={"order": order}
    )
    if order.stripe_payment_intent_id is None:
        order.stripe_payment_intent_id = intent_id
        order.save(update_fields=["stripe_payment_intent_id", "updated_at"])
    return payment


def order_money_refresh(order: Order) -> None:
    """Derives amount_paid and payment_status from the order's Payment rows."""
    payments = list(order.payments.all())
    paid = sum(p.amount_received for p in payments if p.succeeded and p.currency == order.currency)
    if any(p.succeeded for p in payments) and paid >= order.total:
        payment_status = PaymentStatus.PAID
    elif any(p.processing and not p.async_failed and not p.succeeded for p in payments):
        payment_status = PaymentStatus.PROCESSING
    else:
        payment_status = PaymentStatus.UNPAID
    if (order.amount_paid, order.payment_status) != (paid, payment_status):
        order.amount_paid = paid
        order.payment_status = payment_status
        order.save(update_fields=["amount_paid", "payment_status", "updated_at"])


def payment_succeeded(
    order: Order, *, intent_id: str, amount: int, currency: str, stripe_event_id: str
) -> None:
    """Money arrived for `order`. Pays a pending order when amount and currency match;
    anything else is recorded and flagged, never dropped."""
    payment = _payment(order, intent_id)
    if not payment.succeeded or amount > payment.amount_received or not payment.currency:
        payment.succeeded = True
        payment.amount_received = max(payment.amount_received, amount)
        payment.currency = payment.currency or currency
        payment.save()
    order_money_refresh(order)
    if currency != order.currency:
        order_flag(
            order,
            "currency_mismatch",
            stripe_event_id=stripe_event_id,
            message=f"Paid in {currency}, order is in {order.currency}.",
        )
        return
    if amount != order.total:
        order_flag(
            order,
            "amount_mismatch",
            stripe_event_id=stripe_event_id,
            message=f"Paid {amount}, order total is {order.total}.",
        )
        return
    if order.status == Status.PENDING:
        transitions.apply(order, Status.PAID, stripe_event_id=stripe_event_id)
    elif order.status in (Status.PAID, Status.FULFILLED):
        order_note(
            order,
            OrderEvent.Kind.PAYMENT_RECORDED,
            "Payment confirmed again.",
            stripe_event_id=stripe_event_id,
        )
    else:
        # Paid after the order expired, failed or was canceled: the money is real.
        order_flag(
            order,
            "late_payment",
            stripe_event_id=stripe_event_id,
            message=f"Payment of {amount} {currency} received while {order.status}.",
        )


def payment_processing(order: Order, *, intent_id: str | None, stripe_event_id: str) -> None:
    """A delayed method was submitted; the bank's answer comes later."""
    if intent_id:
        payment = _payment(order, intent_id)
        if not payment.processing:
            payment.processing = True
            payment.save()
    order_money_refresh(order)
    order_note(
        order,
        OrderEvent.Kind.PAYMENT_PROCESSING,
        "Delayed payment submitted.",
        stripe_event_id=stripe_event_id,
    )


def payment_async_failed(order: Order, *, intent_id: str | None, stripe_event_id: str) -> None:
    """The delayed payment failed: the order fails (if it was still waiting)."""
    if intent_id:
        payment = _payment(order, intent_id)
        if not payment.async_failed:
            payment.async_failed = True
            payment.save()
    order_money_refresh(order)
    transitions.apply(
        order, Status.FAILED, stripe_event_id=stripe_event_id, message="Delayed payment failed."
    )


def payment_attempt_failed(
    order: Order, *, intent_id: str, error: dict[str, object], stripe_event_id: str
) -> None:
    """A declined card during Checkout: the customer may try again, so nothing ends."""
    _payment(order, intent_id)
    order_note(
        order,
        OrderEvent.Kind.PAYMENT_ATTEMPT_FAILED,
        str(error.get("message") or "Payment attempt failed."),
        stripe_event_id=stripe_event_id,
        code=error.get("code"),
        decline_code=error.get("decline_code"),
    )
