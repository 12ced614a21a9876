"""All sandbox state, in memory: objects as their JSON wire form, the event log, the
idempotency store and a clock that tests can move forward.

Everything runs on one asyncio event loop and no handler awaits in the middle of a
state change, so each API call is atomic without locks.
"""

import copy
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stripe_sandbox import API_VERSION

_ALPHABET = string.ascii_letters + string.digits

StripeObject = dict[str, Any]


def new_id(prefix: str, length: int = 24) -> str:
    # One urandom call per id (secrets.choice makes one per character, a sixth of the
    # sandbox's CPU under load); the slight modulo bias is irrelevant for test ids.
    return f"{prefix}_{''.join(_ALPHABET[b % 62] for b in secrets.token_bytes(length))}"


@dataclass
class IdempotentResult:
    fingerprint: tuple[str, str, str]
    status: int
    body: bytes
    created: int


@dataclass
class Store:
    clock_offset: int = 0
    objects: dict[str, StripeObject] = field(default_factory=dict)
    # Order of creation per object type, for lists (which Stripe returns newest first).
    by_type: dict[str, list[str]] = field(default_factory=dict)
    events: list[StripeObject] = field(default_factory=list)
    idempotency: dict[tuple[str, str], IdempotentResult] = field(default_factory=dict)
    # (API key, Idempotency-Key) of requests still executing: a second one is a 409.
    in_flight: set[tuple[str, str]] = field(default_factory=set)
    # Sandbox-only facts that are not part of Stripe's objects (line items, card used).
    private: dict[str, dict[str, Any]] = field(default_factory=dict)
    listeners: list[Callable[[StripeObject], None]] = field(default_factory=list)

    def now(self) -> int:
        return int(time.time()) + self.clock_offset

    def add(self, obj: StripeObject) -> StripeObject:
        self.objects[obj["id"]] = obj
        self.by_type.setdefault(obj["object"], []).append(obj["id"])
        return obj

    def get(self, object_type: str, object_id: str) -> StripeObject | None:
        obj = self.objects.get(object_id)
        return obj if obj is not None and obj["object"] == object_type else None

    def all(self, object_type: str) -> list[StripeObject]:
        """Newest first, as Stripe lists."""
        return [self.objects[i] for i in reversed(self.by_type.get(object_type, []))]

    def emit(
        self,
        event_type: str,
        obj: StripeObject,
        *,
        previous_attributes: dict[str, Any] | None = None,
        request_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> StripeObject:
        """Records an event carrying a snapshot of `obj` and hands it to the listeners
        (the webhook dispatcher)."""
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous_attributes:
            data["previous_attributes"] = previous_attributes
        event: StripeObject = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 0,
            "request": {"id": request_id, "idempotency_key": idempotency_key},
            "type": event_type,
        }
        self.events.append(event)
        self.objects[event["id"]] = event
        for listener in self.listeners:
            listener(event)
        return event
