"""GET /metrics (docs/operations.md): who may read it, the gauges it reads from the
database at each scrape, and the webhook refusals it counts by reason. The count across
gunicorn workers is tests/core/test_metrics_gunicorn.py."""

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST

from djangomart.core import metrics_db
from djangomart.orders.models import Order
from djangomart.payments.models import ReconciliationRun, StripeEvent
from tests.core.metrics_helpers import Delta, other_connection, samples, value
from tests.payments.builders import order_build
from tests.payments.conftest import WEBHOOK_SECRET, event_json, sign

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-for-tests"  # obviously fake
WEBHOOKS = "djangomart_stripe_webhooks_received_total"


@pytest.fixture
def public(settings: Any) -> None:
    """Metrics open without a token (tests run with DEBUG off, as production)."""
    settings.METRICS_TOKEN = ""
    settings.METRICS_PUBLIC = True


def scrape(client: Client, **headers: Any) -> Any:
    return client.get("/metrics", **headers)


def test_with_a_token_only_its_bearer_reads_the_metrics_even_with_debug_on(
    client: Client, settings: Any
) -> None:
    settings.METRICS_TOKEN = TOKEN
    settings.DEBUG = True
    for refused in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"},
                    {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}x"},
                    {"HTTP_AUTHORIZATION": f"Basic {TOKEN}"},
                    {"HTTP_AUTHORIZATION": TOKEN}):  # fmt: skip
        response = scrape(client, **refused)
        assert response.status_code == 401, refused
        assert response.json()["code"] == "unauthorized"
        assert response["WWW-Authenticate"].startswith("Bearer")
    response = scrape(client, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE_LATEST
    assert "djangomart_metrics_database_up 1.0" in response.content.decode()


def test_without_a_token_production_hides_the_metrics_unless_they_are_declared_public(
    client: Client, settings: Any
) -> None:
    settings.METRICS_TOKEN = ""
    settings.DEBUG = False
    settings.METRICS_PUBLIC = False
    response = scrape(client)
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    settings.METRICS_PUBLIC = True
    assert scrape(client).status_code == 200
    settings.METRICS_PUBLIC = False
    settings.DEBUG = True  # development: open
    assert scrape(client).status_code == 200


@pytest.mark.usefixtures("public")
def test_only_get_and_head_are_answered(client: Client) -> None:
    assert client.head("/metrics").status_code == 200
    response = client.post("/metrics")
    assert (response.status_code, response.json()["code"]) == (405, "method_not_allowed")


def stored(event_id: str, status: str, age: timedelta) -> None:
    StripeEvent.objects.create(
        id=event_id,
        type="checkout.session.completed",
        stripe_created=timezone.now() - age,
        payload={},
        received_at=timezone.now() - age,
        status=status,
    )


@pytest.mark.usefixtures("public", "demo_catalog")
def test_the_gauges_are_the_database_at_the_scrape(client: Client) -> None:
    for n, (status, minutes) in enumerate([("received", 1), ("received", 7), ("failed", 3),
                                           ("dead", 60), ("unmatched", 2), ("processed", 90),
                                           ("ignored", 120)]):  # fmt: skip
        stored(f"evt_gauge_{n}", status, timedelta(minutes=minutes))
    pending = order_build()
    paid = order_build()
    Order.objects.filter(pk=paid.pk).update(status="paid", needs_attention=True)
    finished = timezone.now().replace(microsecond=0) - timedelta(minutes=4)
    ReconciliationRun.objects.create(status="succeeded", finished_at=finished)
    ReconciliationRun.objects.create(status="failed", finished_at=timezone.now())
    assert pending.status == "pending"

    found = samples(scrape(client).content.decode())

    inbox = {
        status: value(found, "djangomart_stripe_inbox_events", status=status)
        for status in ("received", "failed", "unmatched", "dead")
    }
    assert inbox == {"received": 2, "failed": 1, "unmatched": 1, "dead": 1}
    # The oldest received or failed event (the dead one is older, and not unprocessed).
    oldest = value(found, "djangomart_stripe_inbox_oldest_unprocessed_age_seconds")
    assert 7 * 60 <= oldest < 7 * 60 + 30
    orders = {s: value(found, "djangomart_orders", status=s) for s in Order.Status.values}
    assert orders == {"pending": 1, "paid": 1, "fulfilled": 0, "failed": 0, "expired": 0,
                      "canceled": 0}  # fmt: skip
    assert value(found, "djangomart_orders_needing_attention") == 1
    last = value(found, "djangomart_reconciliation_last_success_timestamp_seconds")
    assert last == finished.timestamp()
    assert value(found, "djangomart_metrics_database_up") == 1


@pytest.mark.usefixtures("public")
def test_an_empty_inbox_has_no_oldest_event_and_no_run_no_last_success(client: Client) -> None:
    found = samples(scrape(client).content.decode())
    assert value(found, "djangomart_stripe_inbox_oldest_unprocessed_age_seconds") == 0
    assert ("djangomart_reconciliation_last_success_timestamp_seconds", frozenset()) not in found


@pytest.mark.usefixtures("public")
def test_a_database_too_slow_for_the_scrape_leaves_the_counters_and_says_so(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics_db, "STATEMENT_TIMEOUT_MS", 100)
    with other_connection() as other, other.transaction():
        # A migration holding the orders' table, say.
        other.execute("LOCK TABLE orders_order IN ACCESS EXCLUSIVE MODE")
        response = scrape(client)
    assert response.status_code == 200
    found = samples(response.content.decode())
    assert value(found, "djangomart_metrics_database_up") == 0
    gauges = ("djangomart_orders", "djangomart_stripe_inbox")
    assert not [name for name, _ in found if name.startswith(gauges)]
    assert "# TYPE djangomart_checkouts_total counter" in response.content.decode()
    assert value(samples(scrape(client).content.decode()), "djangomart_metrics_database_up") == 1


def test_the_metrics_are_not_part_of_the_api_schema(client: Client) -> None:
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert paths
    assert not [path for path in paths if "metrics" in path]


def post_signed(client: Client, body: bytes, **headers: Any) -> Any:
    return client.post(
        "/webhooks/stripe",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(body.decode(), WEBHOOK_SECRET),
        **headers,
    )


def test_each_webhook_refusal_is_counted_by_its_reason(client: Client, settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRETS = [WEBHOOK_SECRET]
    event = event_json("customer.created", {"id": "cus_1", "object": "customer"})
    with Delta() as delta:
        assert client.get("/webhooks/stripe").status_code == 405
        too_large = post_signed(client, b"{}", CONTENT_LENGTH=str(2 * 1024 * 1024))
        assert too_large.status_code == 413
        bad = client.post("/webhooks/stripe", data=event, content_type="application/json",
                          HTTP_STRIPE_SIGNATURE=sign(event, "whsec_someone_else"))  # fmt: skip
        assert bad.status_code == 400
        assert post_signed(client, b"{not json").status_code == 400
        assert post_signed(client, json.dumps({"object": "event"}).encode()).status_code == 400
        assert post_signed(client, event.encode()).status_code == 200
        assert post_signed(client, event.encode()).status_code == 200
    refused = {
        (dict(labels)["type"], dict(labels)["outcome"], dict(labels)["reason"]): n
        for (name, labels), n in delta.changed().items()
        if name == WEBHOOKS
    }
    assert refused == {
        ("unknown", "refused", "method_not_allowed"): 1,
        ("unknown", "refused", "too_large"): 1,
        ("unknown", "refused", "bad_signature"): 1,
        ("unknown", "refused", "bad_json"): 1,
        ("unknown", "refused", "not_an_event"): 1,
        ("customer.created", "new", ""): 1,
        ("customer.created", "duplicate", ""): 1,
    }
