"""All sandbox state, in memory: objects as their JSON wire form, the event log, the
idempotency store and a clock that tests can move forward.

Everything runs on one asyncio event loop and no handler awaits in the middle of a
state change, so each API call is atomic without locks.
"""

import copy
import hashlib
import json
import secrets
import string
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stripe_sandbox import API_VERSION

_ALPHABET = string.ascii_letters + string.digits

# The request log keeps the newest entries only: a benchmark's millions of requests must
# not grow the sandbox's memory without bound.
REQUEST_LOG_SIZE = 10_000

# Stripe lists and retrieves events for 30 days; older ones are gone (sandbox clock).
EVENT_RETENTION_SECONDS = 30 * 24 * 60 * 60

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


@dataclass(slots=True)
class RequestRecord:
    """One /v1 request as the sandbox received and answered it, for tests that must see
    what reached "Stripe" (a retry, its key, its parameters) rather than infer it."""

    request_id: str
    method: str
    path: str
    idempotency_key: str | None
    # Canonical JSON of the decoded parameters; None if refused before they were read.
    params_json: str | None = None
    # None while the request executes (or if its client went away before the answer).
    status: int | None = None
    replayed: bool = False
    injected_error: bool = False
    answer_dropped: bool = False
    error: dict[str, Any] | None = None
    time: float = field(default_factory=time.time)

    def finish(self, status: int, *, dropped: bool) -> None:
        self.status = status
        self.answer_dropped = dropped

    def as_dict(self) -> dict[str, Any]:
        params = None if self.params_json is None else json.loads(self.params_json)
        digest = None
        if self.params_json is not None:
            digest = hashlib.sha256(self.params_json.encode()).hexdigest()
        return {
            "id": self.request_id,
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "idempotency_key": self.idempotency_key,
            "params": params,
            "params_sha256": digest,
            "status": self.status,
            "idempotent_replayed": self.replayed,
            "injected_error": self.injected_error,
            "answer_dropped": self.answer_dropped,
            "error": self.error,
        }


class RequestLog:
    """The newest REQUEST_LOG_SIZE requests in the order they arrived, and how many were
    ever seen."""

    def __init__(self, capacity: int = REQUEST_LOG_SIZE) -> None:
        self.entries: deque[RequestRecord] = deque(maxlen=capacity)
        self.recorded = 0

    def record(self, entry: RequestRecord) -> None:
        self.entries.append(entry)
        self.recorded += 1


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
    requests: RequestLog = field(default_factory=RequestLog)

    def now(self) -> int:
        return int(time.time()) + self.clock_offset

    def add(self, obj: StripeObject) -> StripeObject:
        self.objects[obj["id"]] = obj
        self.by_type.setdefault(obj["object"], []).append(obj["id"])
        return obj

    def get(self, object_type: str, object_id: str) -> StripeObject | None:
        obj = self.objects.get(object_id)
        if obj is None or obj["object"] != object_type:
            return None
        if object_type == "event" and not self.event_retained(obj):
            return None
        return obj

    def event_retained(self, event: StripeObject) -> bool:
        """Whether Stripe would still list the event (created within the last 30 days)."""
        return bool(event["created"] >= self.now() - EVENT_RETENTION_SECONDS)

    def events_retained(self) -> list[StripeObject]:
        """The events Stripe still lists, newest first."""
        oldest = self.now() - EVENT_RETENTION_SECONDS
        return [event for event in reversed(self.events) if event["created"] >= oldest]

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
