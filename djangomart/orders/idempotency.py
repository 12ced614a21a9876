"""Idempotency-Key handling shared by the staff operations on an order (refunds,
shipments): a key is scoped to one order and one kind of operation, requests carrying
it are serialized by an advisory lock taken before the order's row lock, and a body is
remembered by its fingerprint, so that the same key with the same body gets the first
answer and with another body a 422."""

import hashlib
import json
from collections.abc import Callable
from typing import Any
from uuid import UUID

from djangomart.core.errors import DomainError
from djangomart.orders.locks import idempotency_key_lock

KEY_MAX_LENGTH = 255
KEY_LOCATION = "header.Idempotency-Key"


class IdempotencyKeyInvalid(DomainError):
    status = 422
    code = "validation_error"

    def __init__(self, message: str) -> None:
        details = [{"location": KEY_LOCATION, "message": message, "type": "value_error"}]
        super().__init__(message, details=details)


class IdempotencyKeyReused(DomainError):
    """The key was used on this order with another body: nothing changed."""

    status = 422
    code = "idempotency_key_reused"
    default_message = "This Idempotency-Key was already used on this order with another body."


def idempotency_key_check(
    key: str | None, *, invalid: Callable[[str], DomainError] = IdempotencyKeyInvalid
) -> str | None:
    """The key as given, or `invalid(message)` raised (empty, too long, a NUL): by
    default IdempotencyKeyInvalid; a service passes its own validation error."""
    if key is None:
        return None
    if not key or len(key) > KEY_MAX_LENGTH:
        raise invalid(f"An Idempotency-Key has 1 to {KEY_MAX_LENGTH} characters.")
    if "\x00" in key:
        raise invalid("The Idempotency-Key contains a NUL character.")
    return key


def request_fingerprint(**fields: Any) -> str:
    """A hash of a request's meaningful fields (JSON-ready values)."""
    body = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def order_key_lock(scope: str, order_id: UUID, key: str) -> None:
    """Serializes the requests carrying `key` for `scope` on one order until the
    transaction ends. Taken before any row lock (lock order: advisory first)."""
    idempotency_key_lock(hashlib.sha256(f"{scope}:{order_id}:{key}".encode()).hexdigest())
