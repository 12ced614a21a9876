"""The body and signature of an outbound webhook: Stripe's scheme under our own header
name, so that a receiver's Stripe verification code works with the name changed."""

import hashlib
import hmac
import json
from typing import Any

SIGNATURE_HEADER = "DjangoMart-Signature"


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The event's payload as it is POSTed: compact, keys sorted, UTF-8. PostgreSQL's
    jsonb does not keep the bytes it was given, so the body is this function of the
    stored payload: the same bytes for every attempt and every resend."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def signature_header(body: bytes, secret: str, timestamp: int) -> str:
    """`t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with the secret>`."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
