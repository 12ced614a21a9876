"""Baseline views, reached without any middleware (bench.app.wsgi)."""

import json
import os
import uuid

import stripe
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

# The table the naive acknowledgement writes to; the benchmark creates it.
NAIVE_TABLE = "bench_naive_event"
NAIVE_DDL = f"CREATE TABLE IF NOT EXISTS {NAIVE_TABLE} (id text PRIMARY KEY, payload jsonb)"


def bare(request: HttpRequest) -> HttpResponse:
    """The framework's limit: a view that does nothing."""
    return HttpResponse(b"ok", content_type="text/plain")


def _verified(request: HttpRequest) -> bool:
    try:
        stripe.WebhookSignature.verify_header(
            request.body.decode(),
            request.headers.get("Stripe-Signature", ""),
            os.environ["STRIPE_WEBHOOK_SECRETS"].split(",")[0],
            tolerance=300,
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        return False
    return True


@csrf_exempt
def naive_ack(request: HttpRequest) -> HttpResponse:
    """What a hand-written webhook endpoint does at the least: verify the signature,
    one INSERT ... ON CONFLICT DO NOTHING in autocommit, 200."""
    if not _verified(request):
        return JsonResponse({"error": "bad signature"}, status=400)
    payload = request.body
    event_id = json.loads(payload)["id"]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {NAIVE_TABLE} (id, payload) VALUES (%s, %s::jsonb)"  # noqa: S608
            " ON CONFLICT DO NOTHING",
            [event_id, payload.decode()],
        )
    return JsonResponse({"received": True})


@csrf_exempt
def seed_style(request: HttpRequest) -> HttpResponse:
    """The seed-style handler, which processes inside the request: verify the signature,
    then in one transaction insert the event, lock its order (`select_for_update`), update
    the order and write a timeline line; 200 after the commit. The order is the one its
    object's metadata names (DjangoMart's own PaymentIntents and charges carry it). It
    is no payment engine (no ownership, no lifecycle, no stock): only its cost and its
    locking are those of the real thing, which is what the benchmark compares."""
    # Here, not at the top: the benchmark runner imports this module's constants
    # without Django set up.
    from djangomart.orders.models import Order, OrderEvent

    if not _verified(request):
        return JsonResponse({"error": "bad signature"}, status=400)
    event = json.loads(request.body)
    metadata = event["data"]["object"].get("metadata") or {}
    try:
        order_id = uuid.UUID(str(metadata.get("order_id")))
    except ValueError:
        order_id = None
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {NAIVE_TABLE} (id, payload) VALUES (%s, %s::jsonb)"  # noqa: S608
            " ON CONFLICT DO NOTHING RETURNING id",
            [event["id"], request.body.decode()],
        )
        new = cursor.fetchone() is not None
        order = None
        if new and order_id is not None:
            order = Order.objects.select_for_update().filter(pk=order_id).first()
        if order is not None:
            order.updated_at = timezone.now()
            order.save(update_fields=["updated_at"])
            OrderEvent.objects.create(order=order, kind=OrderEvent.Kind.NOTE,
                                      message=f"seed-style: {event['type']}",
                                      stripe_event_id=event["id"])  # fmt: skip
    return JsonResponse({"received": True})
