"""The only module that talks to Stripe, through the official SDK.

Every POST carries an idempotency key derived from our own ids, so the SDK's own
retries (network errors, 409, 5xx) and ours can never create a second object.
Callers must not hold database row locks while calling in here. Results come back
as plain dicts (Stripe's JSON), not SDK objects.
"""

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import stripe
from django.conf import settings

# Network errors and 5xx are retried by the SDK with the same idempotency key.
MAX_NETWORK_RETRIES = 2
SIGNATURE_TOLERANCE = 300


class GatewayError(Exception):
    """Stripe did not do what was asked: it refused the request, or (GatewayUnavailable)
    could not be reached or failed even after the SDK's retries."""


class GatewayUnavailable(GatewayError):
    """Stripe could not be reached or failed (after the SDK's retries)."""


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str


@dataclass(frozen=True)
class CheckoutLine:
    name: str
    unit_amount: int
    quantity: int


@functools.cache
def _client() -> stripe.StripeClient:
    options: dict[str, Any] = {"max_network_retries": MAX_NETWORK_RETRIES}
    if settings.STRIPE_API_BASE:
        options["base_addresses"] = {"api": settings.STRIPE_API_BASE}
    return stripe.StripeClient(settings.STRIPE_SECRET_KEY, **options)


def client_reset() -> None:
    """Forget the cached client (after settings changed, in tests)."""
    _client.cache_clear()


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError) as exc:
        raise GatewayUnavailable(str(exc)) from exc
    except stripe.StripeError as exc:
        raise GatewayError(str(exc)) from exc


def checkout_session_create(
    *,
    order_id: str,
    email: str,
    currency: str,
    lines: Sequence[CheckoutLine],
    success_url: str,
    cancel_url: str,
    expires_at: int,
) -> CheckoutSession:
    """Creates the Checkout Session for an order; idempotent per order."""
    params: dict[str, Any] = {
        "mode": "payment",
        "client_reference_id": order_id,
        "customer_email": email,
        "metadata": {"order_id": order_id},
        "payment_intent_data": {"metadata": {"order_id": order_id}},
        "line_items": [
            {
                "quantity": line.quantity,
                "price_data": {
                    "currency": currency,
                    "unit_amount": line.unit_amount,
                    "product_data": {"name": line.name},
                },
            }
            for line in lines
        ],
        "success_url": success_url,
        "cancel_url": cancel_url,
        "expires_at": expires_at,
    }
    session = _call(
        _client().v1.checkout.sessions.create,
        params=params,
        options={"idempotency_key": f"checkout:{order_id}"},
    )
    return CheckoutSession(id=session.id, url=session.url)


def checkout_session_expire(session_id: str) -> None:
    """Expires an open session so that nobody can pay it (an expired one is left alone)."""
    session = _call(_client().v1.checkout.sessions.retrieve, session_id)
    if session.status == "open":
        _call(
            _client().v1.checkout.sessions.expire,
            session_id,
            options={"idempotency_key": f"checkout-expire:{session_id}"},
        )


def checkout_session_retrieve(session_id: str) -> dict[str, Any]:
    session = _call(_client().v1.checkout.sessions.retrieve, session_id)
    return session.to_dict()  # type: ignore[no-any-return]


class SignatureError(Exception):
    """The payload is not signed by any configured secret within the tolerance."""


def webhook_payload_verify(payload: bytes, signature_header: str, secrets: Sequence[str]) -> None:
    """Checks Stripe's signature against every configured secret (rotation: any one may
    sign), with a 300 s tolerance both ways: the SDK refuses old timestamps, and we
    also refuse ones from the future."""
    if not signature_header or not secrets:
        raise SignatureError("missing signature or no configured secret")
    timestamps = [part[2:] for part in signature_header.split(",") if part.strip().startswith("t=")]
    try:
        timestamp = int(timestamps[0].strip())
    except (IndexError, ValueError):
        raise SignatureError("malformed signature header") from None
    if timestamp > time.time() + SIGNATURE_TOLERANCE:
        raise SignatureError("timestamp is in the future")
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(
                payload, signature_header, secret, SIGNATURE_TOLERANCE
            )
            return
        except stripe.SignatureVerificationError:
            continue
        except UnicodeDecodeError:
            raise SignatureError("the body is not UTF-8, so Stripe did not sign it") from None
    raise SignatureError("no configured secret matches")
