"""One small function per Stripe event type. Each gets the event and its order, already
locked by inbox.py and checked to be about the order's own session or PaymentIntent
(payments.ownership), writes rows, and neither commits nor calls Stripe."""

from collections.abc import Callable
from typing import Any

from djangomart.orders.models import Order
from djangomart.payments import disputes, facts, ownership, refunds
from djangomart.payments.checkout import checkout_session_apply
from djangomart.payments.models import StripeEvent


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def on_checkout_session(event: StripeEvent, order: Order) -> None:
    """completed, async_payment_succeeded and expired all say what the session now is."""
    checkout_session_apply(order, event.data_object, stripe_event_id=event.id)


def on_async_payment_failed(event: StripeEvent, order: Order) -> None:
    session = event.data_object
    facts.session_link(order, session.get("id"))  # the inbox checked it is the order's own
    facts.payment_async_failed(
        order, intent_id=_str(session.get("payment_intent")), stripe_event_id=event.id
    )


def on_payment_intent_succeeded(event: StripeEvent, order: Order) -> None:
    intent = event.data_object
    facts.payment_succeeded(
        order,
        intent_id=str(intent["id"]),
        amount=int(intent.get("amount_received") or 0),
        currency=str(intent.get("currency") or ""),
        stripe_event_id=event.id,
    )


def on_payment_intent_payment_failed(event: StripeEvent, order: Order) -> None:
    intent = event.data_object
    error = intent.get("last_payment_error")
    facts.payment_attempt_failed(
        order,
        intent_id=str(intent["id"]),
        error=error if isinstance(error, dict) else {},
        stripe_event_id=event.id,
        own=ownership.intent_is_own(order, intent["id"]),
    )


def on_charge_dispute(event: StripeEvent, order: Order) -> None:
    """Every charge.dispute.* event carries the whole dispute: one upsert for all five."""
    disputes.dispute_fact(
        order,
        event.data_object,
        event_type=event.type,
        stripe_event_id=event.id,
        event_created=event.stripe_created,
    )


def on_refund(event: StripeEvent, order: Order) -> None:
    """refund.created, .updated, .failed and the older charge.refund.updated: each carries
    the refund as it is now (Dashboard refunds included, without our metadata)."""
    refunds.refund_fact(order, event.data_object, stripe_event_id=event.id)


def on_charge_refunded(event: StripeEvent, order: Order) -> None:
    """The charge's cumulative amount_refunded; makes up for refund events still missing."""
    refunds.charge_refunded(order, event.data_object, stripe_event_id=event.id)


HANDLERS: dict[str, Callable[[StripeEvent, Order], None]] = {
    "checkout.session.completed": on_checkout_session,
    "checkout.session.async_payment_succeeded": on_checkout_session,
    "checkout.session.expired": on_checkout_session,
    "checkout.session.async_payment_failed": on_async_payment_failed,
    "payment_intent.succeeded": on_payment_intent_succeeded,
    "payment_intent.payment_failed": on_payment_intent_payment_failed,
    "charge.dispute.created": on_charge_dispute,
    "charge.dispute.updated": on_charge_dispute,
    "charge.dispute.closed": on_charge_dispute,
    "charge.dispute.funds_withdrawn": on_charge_dispute,
    "charge.dispute.funds_reinstated": on_charge_dispute,
    "refund.created": on_refund,
    "refund.updated": on_refund,
    "refund.failed": on_refund,
    "charge.refund.updated": on_refund,
    "charge.refunded": on_charge_refunded,
}
