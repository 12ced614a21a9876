"""Money facts: what Stripe told us about each PaymentIntent, upserted by id, and the
order's money fields derived from them. Facts only accumulate (flags turn on,
amounts grow), so the same facts in any order, any number of times, give the same
result, and `paid` never regresses."""

from typing import Any

from djangomart.notify.events import EventType
from djangomart.notify.services import notify_enqueue
from djangomart.orders import transitions
from djangomart.orders.locks import payment_intent_lock
from djangomart.orders.models import Order, OrderEvent
from djangomart.orders.services import order_flag, order_note
from djangomart.payments import late_payments
from djangomart.payments.disputes import order_disputes_derive
from djangomart.payments.models import Payment, Refund

Status = Order.Status
PaymentStatus = Order.PaymentStatus


def _payment(order: Order, intent_id: str) -> Payment | None:
    """The order's Payment row for a PaymentIntent, created on first sight; None when
    that PaymentIntent already belongs to another order (the caller flags it)."""
    payment_intent_lock(intent_id)
    payment, created = Payment.objects.get_or_create(
        stripe_payment_intent_id=intent_id, defaults={"order": order}
    )
    if payment.order_id != order.pk:
        return None
    if created:
        # The PaymentIntent is now known to be the order's own: its events that came
        # before the session's were left waiting (inbox._process); queue them again.
        from djangomart.payments.inbox import stripe_events_waiting_requeue

        stripe_events_waiting_requeue(order_id=order.pk, intent_id=intent_id)
    if order.stripe_payment_intent_id is None:
        order.stripe_payment_intent_id = intent_id
        order.save(update_fields=["stripe_payment_intent_id", "updated_at"])
    return payment


def _payment_or_flag(order: Order, intent_id: str, *, stripe_event_id: str) -> Payment | None:
    """_payment, flagging the order `payment_intent_conflict` when the PaymentIntent
    belongs to another order: for the facts that would move money or the order."""
    payment = _payment(order, intent_id)
    if payment is None:
        order_flag(
            order,
            "payment_intent_conflict",
            stripe_event_id=stripe_event_id,
            message=f"{intent_id} already belongs to another order.",
        )
    return payment


def session_link(order: Order, session_id: object) -> None:
    """Stores the session id on an order that died before storing it (the crash window;
    the caller checked that the session is the order's own)."""
    if order.stripe_checkout_session_id is None and isinstance(session_id, str) and session_id:
        order.stripe_checkout_session_id = session_id
        order.save(update_fields=["stripe_checkout_session_id", "updated_at"])


def payment_intent_adopt(order: Order, intent_id: str | None) -> None:
    """The order's own session names `intent_id`: record it as the order's (a Payment
    row), so that its events are recognised as the order's own."""
    if intent_id:
        _payment(order, intent_id)


def payment_intent_row(order: Order, intent_id: str) -> Payment | None:
    """The order's Payment row for a PaymentIntent the caller checked is the order's own
    (ownership.intent_is_own), created on first sight; None if another order's."""
    return _payment(order, intent_id)


def order_money_refresh(order: Order) -> None:
    """Derives amount_paid, amount_refunded and payment_status from the order's Payment
    and Refund rows: the one place these fields are computed. Writes only what changed.

    `paid` means one payment in the order's currency covered exactly its total; money
    that does not match (another amount, another currency) is kept on its Payment row
    and in amount_paid (order currency only), and the order is flagged by the caller.
    amount_refunded adds up the succeeded refunds in the order's currency; once some of
    the money paid is refunded the order is `partially_refunded`, once all of it is,
    `refunded` (a pending refund is not money back yet; a failed one never was).
    """
    order_disputes_derive(order)  # disputed, dispute_lost, amount_lost_to_disputes
    payments = list(order.payments.all())
    received = [p for p in payments if p.succeeded and p.currency == order.currency]
    paid = sum(p.amount_received for p in received)
    refunded = sum(
        order.refunds.filter(status=Refund.Status.SUCCEEDED, currency=order.currency).values_list(
            "amount", flat=True
        )
    )
    if paid and refunded >= paid:
        payment_status = PaymentStatus.REFUNDED
    elif paid and refunded:
        payment_status = PaymentStatus.PARTIALLY_REFUNDED
    elif any(p.amount_received == order.total for p in received):
        payment_status = PaymentStatus.PAID
    elif any(p.processing and not p.async_failed and not p.succeeded for p in payments):
        payment_status = PaymentStatus.PROCESSING
    else:
        payment_status = PaymentStatus.UNPAID
    if (order.amount_paid, order.amount_refunded, order.payment_status) != (
        paid,
        refunded,
        payment_status,
    ):
        newly_refunded = (
            payment_status == PaymentStatus.REFUNDED
            and order.payment_status != PaymentStatus.REFUNDED
        )
        order.amount_paid = paid
        order.amount_refunded = refunded
        order.payment_status = payment_status
        order.save(update_fields=["amount_paid", "amount_refunded", "payment_status",
                                  "updated_at"])  # fmt: skip
        if newly_refunded:
            # Once per order (the outbox's cause is empty), even if a refund that had
            # succeeded later fails and another one brings the order back to refunded.
            notify_enqueue(EventType.ORDER_REFUNDED, order)


def payment_succeeded(
    order: Order, *, intent_id: str, amount: int, currency: str, stripe_event_id: str
) -> None:
    """Money arrived for `order` (locked). Pays a pending order when amount and currency
    match; anything else is recorded and flagged, never dropped. Money in full for an
    order that already ended goes to the late-payment policy. Without a Stripe event
    (the landing-page sync), facts already known change nothing and write nothing."""
    payment = _payment_or_flag(order, intent_id, stripe_event_id=stripe_event_id)
    if payment is None:
        return
    known = (payment.succeeded, payment.amount_received, payment.currency)
    payment.succeeded = True
    payment.amount_received = max(payment.amount_received, amount)
    payment.currency = payment.currency or currency
    if (payment.succeeded, payment.amount_received, payment.currency) == known:
        if not stripe_event_id:
            return
    else:
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
    duplicate = order.payments.filter(succeeded=True).exclude(pk=payment.pk).exists()
    if duplicate:
        # A second successful PaymentIntent for one order: the customer paid twice.
        order_flag(
            order,
            "duplicate_payment",
            stripe_event_id=stripe_event_id,
            message=f"{intent_id} is a second successful payment for this order.",
        )
    elif order.status in (Status.PAID, Status.FULFILLED) and not known[0]:
        # Paid before any payment of it succeeded: staff accepted it as paid (money
        # received another way), and now the customer paid at Stripe too.
        order_flag(
            order,
            "duplicate_payment",
            stripe_event_id=stripe_event_id,
            message=f"{intent_id} succeeded after the order was accepted as paid by staff.",
        )
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
        # Paid after the order expired, failed or was canceled: the money is real, and
        # the reserved stock was already given back. LATE_PAYMENT_POLICY decides, once
        # per payment (payments.late_payments).
        late_payments.late_payment_apply(
            order, payment, stripe_event_id=stripe_event_id, duplicate=duplicate
        )


def payment_processing(order: Order, *, intent_id: str | None, stripe_event_id: str) -> None:
    """A delayed method was submitted; the bank's answer comes later."""
    payment = _payment(order, intent_id) if intent_id else None
    if payment is not None and not payment.processing:
        payment.processing = True
        payment.save()
    elif not stripe_event_id:
        return  # a sync re-reading what is already known
    order_money_refresh(order)
    order_note(
        order,
        OrderEvent.Kind.PAYMENT_PROCESSING,
        "Delayed payment submitted.",
        stripe_event_id=stripe_event_id,
    )


def payment_async_failed(
    order: Order,
    *,
    intent_id: str | None,
    stripe_event_id: str,
    message: str = "Delayed payment failed.",
) -> None:
    """The delayed payment failed: the order fails (if it was still waiting)."""
    payment = _payment(order, intent_id) if intent_id else None
    if payment is not None and not payment.async_failed:
        payment.async_failed = True
        payment.save()
    order_money_refresh(order)
    transitions.apply(order, Status.FAILED, stripe_event_id=stripe_event_id, message=message)


# A PaymentIntent back in one of these after its delayed payment was processing has
# failed: Stripe leaves the Checkout Session complete/unpaid, and the only other sign is
# the async_payment_failed webhook, which may be lost.
INTENT_FAILED_STATES = frozenset({"requires_payment_method", "canceled"})


def payment_intent_read(order: Order, intent: dict[str, Any]) -> None:
    """What a sync read from the order's own PaymentIntent (ownership.intent_read_is_own)
    while its Checkout Session is complete/unpaid (a delayed method was submitted, so the
    caller recorded it as processing first). No Stripe event: a fact already known
    writes nothing.

    - `succeeded`: money arrived (payment_succeeded, with its amount and currency checks);
    - `requires_payment_method` or `canceled` after processing: the delayed payment
      failed, as async_payment_failed says (the order fails and gives its stock back);
    - `processing`, or anything else: nothing new.
    """
    intent_id = str(intent["id"])
    status = intent.get("status")
    if status == "succeeded":
        payment_succeeded(
            order,
            intent_id=intent_id,
            amount=int(intent.get("amount_received") or 0),
            currency=str(intent.get("currency") or ""),
            stripe_event_id="",
        )
        return
    if status not in INTENT_FAILED_STATES:
        return
    payment = _payment_or_flag(order, intent_id, stripe_event_id="")
    if payment is None:
        return
    if not payment.processing or payment.succeeded or payment.async_failed:
        # Not after a processing attempt, contradicting money already received, or known.
        return
    error = intent.get("last_payment_error")
    reason = error.get("message") if isinstance(error, dict) else None
    payment_async_failed(
        order,
        intent_id=intent_id,
        stripe_event_id="",
        message=f"Delayed payment failed: its PaymentIntent is {status}"
        + (f" ({reason})." if reason else "."),
    )


def payment_attempt_failed(
    order: Order, *, intent_id: str, error: dict[str, object], stripe_event_id: str, own: bool
) -> None:
    """A declined card during Checkout: the customer may try again, so nothing ends. A
    PaymentIntent not (yet) known to be the order's own (`own`) gets no Payment row: only
    the order's own session can make it the order's."""
    if own:
        _payment(order, intent_id)
    order_note(
        order,
        OrderEvent.Kind.PAYMENT_ATTEMPT_FAILED,
        str(error.get("message") or "Payment attempt failed."),
        stripe_event_id=stripe_event_id,
        code=error.get("code"),
        decline_code=error.get("decline_code"),
        payment_intent=intent_id,
    )
