"""Baseline views, reached without any middleware (bench.app.wsgi)."""

import json
import os

import stripe
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

# The table the naive acknowledgement writes to; the benchmark creates it.
NAIVE_TABLE = "bench_naive_event"
NAIVE_DDL = f"CREATE TABLE IF NOT EXISTS {NAIVE_TABLE} (id text PRIMARY KEY, payload jsonb)"


def bare(request: HttpRequest) -> HttpResponse:
    """The framework's limit: a view that does nothing."""
    return HttpResponse(b"ok", content_type="text/plain")


@csrf_exempt
def naive_ack(request: HttpRequest) -> HttpResponse:
    """What a hand-written webhook endpoint does at the least: verify the signature,
    one INSERT ... ON CONFLICT DO NOTHING in autocommit, 200."""
    payload = request.body
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode(),
            request.headers.get("Stripe-Signature", ""),
            os.environ["STRIPE_WEBHOOK_SECRETS"].split(",")[0],
            tolerance=300,
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        return JsonResponse({"error": "bad signature"}, status=400)
    event_id = json.loads(payload)["id"]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {NAIVE_TABLE} (id, payload) VALUES (%s, %s::jsonb)"  # noqa: S608
            " ON CONFLICT DO NOTHING",
            [event_id, payload.decode()],
        )
    return JsonResponse({"received": True})
