"""The counters move with what the shop does, against the offline Stripe sandbox over real
HTTP: checkouts by outcome, each Stripe API call by operation and outcome with its
duration, the event workers' processing outcomes with the time from receipt, and
reconciliation runs by outcome (docs/operations.md)."""

import json
from typing import Any

import pytest
from django.test import Client

from djangomart.orders.models import Order
from djangomart.payments import backfill
from djangomart.payments.inbox import stripe_event_process
from djangomart.payments.inbox_worker import stripe_events_work
from tests.core.metrics_helpers import Delta, other_connection, samples, value
from tests.payments.builders import new_intent_id, order_build
from tests.payments.conftest import event_json, post_event, session_object
from tests.payments.stripe_proxy import Handler, StripeProxy
from tests.stripe_sandbox.harness import SandboxServer

CHECKOUTS = "djangomart_checkouts_total"
API_CALLS = "djangomart_stripe_api_requests_total"
API_SECONDS = "djangomart_stripe_api_request_duration_seconds_count"
PROCESSED = "djangomart_stripe_events_processed_total"
LAG = "djangomart_stripe_event_receipt_to_processed_seconds_count"
RUNS = "djangomart_reconciliation_runs_total"
SESSIONS = "/v1/checkout/sessions"


def checkout(client: Client, key: str = "metrics-checkout-key-0001") -> Any:
    return client.post(
        "/api/v1/checkout",
        {"email": "buyer@example.com", "lines": [{"sku": "CLASSIC-TEE-M", "quantity": 1}]},
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


@pytest.mark.django_db
@pytest.mark.usefixtures("demo_catalog")
def test_a_checkout_its_retry_and_its_events_move_their_counters(
    client: Client, sandbox: SandboxServer, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.STRIPE_EVENT_MAX_ATTEMPTS = 2
    with Delta() as delta:
        first = checkout(client)
        assert first.status_code == 201, first.content
        assert checkout(client).json() == first.json()  # the retry: no second Stripe call
        order = Order.objects.get(pk=first.json()["order"]["id"])
        paid = event_json("checkout.session.completed", session_object(order))
        assert post_event(client, paid).status_code == 200
        broken = order_build(intent_id=new_intent_id())
        failing = event_json(
            "checkout.session.completed", session_object(broken, amount_total="abc")
        )
        assert post_event(client, failing).status_code == 200
        with django_capture_on_commit_callbacks(execute=True):
            # The worker takes both; the broken one fails, its retry waits for its time.
            assert stripe_events_work() == 2
        with django_capture_on_commit_callbacks(execute=True):
            assert stripe_event_process(event_id=json.loads(failing)["id"]) == "dead"

    assert Order.objects.get(pk=order.pk).status == "paid"
    assert (delta(CHECKOUTS, outcome="created", reason=""),
            delta(CHECKOUTS, outcome="replayed", reason="")) == (1, 1)  # fmt: skip
    create = "checkout.sessions.create"
    assert delta(API_CALLS, operation=create, outcome="ok") == 1
    assert delta(API_SECONDS, operation=create) == 1
    kind = "checkout.session.completed"
    assert {outcome: delta(PROCESSED, type=kind, outcome=outcome)
            for outcome in ("processed", "failed", "dead")} == {
        "processed": 1, "failed": 1, "dead": 1,
    }  # fmt: skip
    assert delta(LAG) == 1  # only the event that reached its end


@pytest.mark.django_db
@pytest.mark.usefixtures("demo_catalog")
def test_stripe_refusing_a_checkout_counts_a_refused_call_and_a_stripe_error(
    client: Client, stripe_proxy: Any
) -> None:
    def refuse(proxy: StripeProxy, method: str, path: str, n: int, h: Handler, body: bytes) -> bool:
        if (method, path) != ("POST", SESSIONS):
            return False
        error = {"type": "invalid_request_error", "code": "amount_too_small", "message": "No."}
        h.answer_json(400, json.dumps({"error": error}).encode())
        return True

    stripe_proxy(refuse)
    with Delta() as delta:
        response = checkout(client)
    assert (response.status_code, response.json()["code"]) == (502, "payment_provider_rejected")
    assert delta(API_CALLS, operation="checkout.sessions.create", outcome="refused") == 1
    assert delta(CHECKOUTS, outcome="stripe_error", reason="payment_provider_rejected") == 1
    assert delta(CHECKOUTS, outcome="created", reason="") == 0


@pytest.mark.django_db(transaction=True)
def test_reconciliation_runs_are_counted_by_outcome_and_the_last_success_is_a_gauge(
    client: Client, stripe_proxy: Any, settings: Any
) -> None:
    settings.METRICS_PUBLIC = True
    refusing = {"on": False}

    def events(proxy: StripeProxy, method: str, path: str, n: int, h: Handler, body: bytes) -> bool:
        if not (refusing["on"] and path == "/v1/events"):
            return False
        h.answer_json(400, b'{"error": {"type": "invalid_request_error", "message": "No."}}')
        return True

    stripe_proxy(events)
    with Delta() as delta:
        run = backfill.reconcile_run(trigger="command")
        refusing["on"] = True
        assert backfill.reconcile_run(trigger="command").status == "failed"
        with other_connection() as other:
            # Another run holds the lock (on its own connection).
            other.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [backfill._LOCK])
            with pytest.raises(backfill.ReconcileBusy):
                backfill.reconcile_run(trigger="periodic")
    assert run.status == "succeeded"
    assert {outcome: delta(RUNS, outcome=outcome) for outcome in ("succeeded", "failed",
                                                                  "skipped")} == {
        "succeeded": 1, "failed": 1, "skipped": 1,
    }  # fmt: skip
    found = samples(client.get("/metrics").content.decode())
    assert run.finished_at is not None
    last = value(found, "djangomart_reconciliation_last_success_timestamp_seconds")
    assert last == pytest.approx(run.finished_at.timestamp(), abs=1e-3)
