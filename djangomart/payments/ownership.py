"""Which events are ours (docs/payments.md, "Which events are ours").

An event acts on an order only when it is about that order's own Checkout Session or
PaymentIntent, in the configured key's mode, for our own account. Anyone with access to
the Stripe account (another integration, a dashboard user) can create a session whose
metadata carries a real order id; it must never pay, fail or expire that order.

Reads only: the callers (inbox, checkout_session_apply) decide what to write.
"""

from typing import Any

from django.conf import settings

from djangomart.orders.models import Order


def live_key() -> bool:
    """Whether the configured key is a live one. Test keys, the sandbox's key and no key
    at all (development) are test mode: a live event is never applied without a live key."""
    return settings.STRIPE_SECRET_KEY.startswith(("sk_live_", "rk_live_"))


def mode_name(livemode: bool) -> str:
    return "live" if livemode else "test"


def event_not_ours(payload: dict[str, Any]) -> str | None:
    """Why a signed event is not this shop's to apply (a Connect account's, or the other
    mode's), or None."""
    account = payload.get("account")
    if account:
        return (
            f"Event of the connected account {account}, not this shop's own account; not applied."
        )
    livemode = bool(payload.get("livemode"))
    if livemode != live_key():
        return (
            f"A {mode_name(livemode)}-mode event, but the configured key is a "
            f"{mode_name(live_key())}-mode key; not applied."
        )
    return None


def session_is_own(order: Order, session: dict[str, Any]) -> bool:
    """Whether `session` is the Checkout Session the shop created for `order`.

    Once the order stores its session id, only that session is. Before (the web process
    died between creating the session and storing its id), a session is the order's own
    when it carries everything checkout_session_create puts on it: our metadata.order_id,
    our client_reference_id, and the order's amount and currency.
    """
    livemode = session.get("livemode")
    if isinstance(livemode, bool) and livemode != live_key():
        return False
    session_id = session.get("id")
    if not isinstance(session_id, str) or not session_id:
        return False
    if order.stripe_checkout_session_id is not None:
        return session_id == order.stripe_checkout_session_id
    metadata = session.get("metadata")
    amount = session.get("amount_total")
    return (
        isinstance(metadata, dict)
        and metadata.get("order_id") == str(order.id)
        and session.get("client_reference_id") == str(order.id)
        and type(amount) is int
        and amount == order.total
        and session.get("currency") == order.currency
    )


def intent_is_own(order: Order, intent_id: object) -> bool:
    """Whether a PaymentIntent is `order`'s own: the order's own Checkout Session named it
    (it is then stored on the order, or has a Payment row of the order). metadata.order_id
    alone proves nothing: anyone can put it on a PaymentIntent."""
    if not isinstance(intent_id, str) or not intent_id:
        return False
    if order.stripe_payment_intent_id == intent_id:
        return True
    return order.payments.filter(stripe_payment_intent_id=intent_id).exists()


def intent_read_is_own(order: Order, intent_id: str, intent: dict[str, Any]) -> bool:
    """Whether a PaymentIntent read from Stripe is the one `intent_id` that the order's
    own Checkout Session names: the same id, the configured key's mode, and, when it
    carries one, our metadata.order_id (checkout_session_create puts it there)."""
    if intent.get("id") != intent_id:
        return False
    livemode = intent.get("livemode")
    if isinstance(livemode, bool) and livemode != live_key():
        return False
    metadata = intent.get("metadata")
    named = metadata.get("order_id") if isinstance(metadata, dict) else None
    return named is None or named == str(order.id)
