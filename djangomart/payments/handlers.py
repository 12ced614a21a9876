"""One small function per Stripe event type. Each gets the event and its order, already
locked by inbox.py and checked to be about the order's own session or PaymentIntent
(payments.ownership), writes rows, and neither commits nor calls Stripe."""

from collections.abc import Callable
from typing import Any

from djangomart.orders.models import Order
from djangomart.payments import disputes, facts, ownership
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
}
