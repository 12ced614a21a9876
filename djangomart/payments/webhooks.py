"""POST /webhooks/stripe: the ingest. Verify, store, answer; nothing else.

Stripe retries for days, so the acknowledgement is cheap: no Stripe call, no order
lock, one INSERT ... ON CONFLICT in autocommit, whose row is the event workers' work
(payments.inbox), through settings.WEBHOOK_MIDDLEWARE only (djangomart/wsgi.py). A
database failure is a 503 so that Stripe retries; a bad signature or body is a 400 and
stores nothing.
"""

import json
import logging

from django.conf import settings
from django.db import DataError
from django.db import Error as DbError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from djangomart.core.errors import error_response
from djangomart.core.metrics import STRIPE_WEBHOOKS_RECEIVED, UNKNOWN_TYPE
from djangomart.payments import gateway
from djangomart.payments.inbox import InvalidEvent, InvalidJson, event_parse, event_store

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024

# The two answers, encoded once: this runs for every delivery.
_ACK = {
    True: json.dumps({"received": True, "duplicate": False}).encode(),
    False: json.dumps({"received": True, "duplicate": True}).encode(),
}


@csrf_exempt
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    # ALLOWED_HOSTS, as CommonMiddleware checks it on every other path (DisallowedHost:
    # a 400, logged by django.security).
    request.get_host()
    if request.method != "POST":
        response = _refuse("method_not_allowed", 405, "method_not_allowed", "Use POST.")
        response["Allow"] = "POST"
        return response
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
        return _refuse("too_large", 413, "payload_too_large", "The body is larger than 1 MiB.")
    try:
        payload = request.read(MAX_BODY_BYTES + 1)
    except OSError:
        # The client stopped sending its body (the web worker's read timeout,
        # WEB_READ_TIMEOUT): nothing to store, and Stripe sends it again.
        return _refuse(
            "incomplete_body", 400, "incomplete_body", "The body did not arrive in full."
        )
    if len(payload) > MAX_BODY_BYTES:
        return _refuse("too_large", 413, "payload_too_large", "The body is larger than 1 MiB.")
    try:
        gateway.webhook_payload_verify(
            payload, request.headers.get("Stripe-Signature", ""), settings.STRIPE_WEBHOOK_SECRETS
        )
    except gateway.SignatureError as exc:
        return _refuse("bad_signature", 400, "invalid_signature", f"Signature refused: {exc}.")
    try:
        event = event_parse(payload)
    except InvalidEvent as exc:
        reason = "bad_json" if isinstance(exc, InvalidJson) else "not_an_event"
        return _refuse(reason, 400, "invalid_event", f"Not a Stripe event: {exc}.")
    try:
        inserted = event_store(event, payload)
    except DataError:
        # PostgreSQL's JSON cannot hold it (a \u0000 in a string): retrying cannot help.
        logger.exception("webhook: event cannot be stored", extra={"event_id": event["id"]})
        return _refuse("unstorable", 400, "invalid_event", "The event cannot be stored.",
                       event_type=event["type"])  # fmt: skip
    except DbError:
        # Any database trouble, a lost connection included: 503, and Stripe retries.
        logger.exception("webhook: could not store event", extra={"event_id": event["id"]})
        STRIPE_WEBHOOKS_RECEIVED.labels(event["type"], "error", "database").inc()
        return error_response(503, "service_unavailable", "Try again later.")
    STRIPE_WEBHOOKS_RECEIVED.labels(event["type"], "new" if inserted else "duplicate", "").inc()
    return HttpResponse(_ACK[inserted], content_type="application/json")


def _refuse(
    reason: str, status: int, code: str, message: str, *, event_type: str = UNKNOWN_TYPE
) -> JsonResponse:
    """A refusal: counted by `reason` (docs/operations.md) and logged."""
    STRIPE_WEBHOOKS_RECEIVED.labels(event_type, "refused", reason).inc()
    logger.warning("webhook refused", extra={"reason": code, "refusal": reason})
    return error_response(status, code, message)
