"""POST /webhooks/stripe: every refusal with its documented status, a JSON error body and
nothing stored; the good path stores the event once, counts repeat deliveries and queues
exactly one job, without a Stripe call or an order lock in the request."""

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from djangomart.orders.models import Order
from djangomart.payments import gateway
from djangomart.payments.inbox import events_due, stripe_event_process
from djangomart.payments.models import StripeEvent
from djangomart.payments.webhooks import MAX_BODY_BYTES
from tests.payments.conftest import (
    OTHER_SECRET,
    WEBHOOK_SECRET,
    event_json,
    intent_object,
    post_event,
    run_jobs,
    session_object,
    sign,
)
from tests.payments.race_helpers import (
    event_jobs,
    held_transaction,
    is_due,
    order_pending,
    order_row_locked,
    order_state,
)

pytestmark = pytest.mark.django_db

URL = "/webhooks/stripe"


@pytest.fixture
def order(stripe_settings: Any) -> Order:
    return order_pending()


@pytest.fixture
def payload(order: Order) -> str:
    """A checkout.session.completed (paid) for `order`: what a refusal must not apply."""
    return event_json("checkout.session.completed", session_object(order))


@pytest.fixture
def before(order: Order) -> dict[str, Any]:
    return order_state(order.pk)


def post_raw(client: Client, body: str | bytes, **headers: Any) -> Any:
    return client.post(URL, data=body, content_type="application/json", **headers)


def post_signed(client: Client, body: str, **sign_args: Any) -> Any:
    return post_raw(client, body, HTTP_STRIPE_SIGNATURE=sign(body, **sign_args))


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"code", "message"}, body
    assert body["code"] == code
    assert isinstance(body["message"], str)
    assert body["message"]


def assert_nothing_stored(order: Order, before: dict[str, Any], event_id: str = "") -> None:
    assert not StripeEvent.objects.exists()
    assert order_state(order.pk) == before


def event_id_of(payload: str) -> str:
    return str(json.loads(payload)["id"])


# --- Refusals: the documented status, a JSON error, no row, no job, no order change ---


def test_a_delivery_without_a_stripe_signature_is_refused_and_stores_nothing(
    client: Client, order: Order, payload: str, before: dict[str, Any]
) -> None:
    response = post_raw(client, payload)

    assert_error(response, 400, "invalid_signature")
    assert_nothing_stored(order, before, event_id_of(payload))


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "t=,v1=abc",
        "t=not-a-number,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd",
        "v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd",
        "t=1700000000",
    ],
    ids=["garbage", "empty-t", "non-numeric-t", "no-timestamp", "no-v1"],
)
def test_a_malformed_signature_header_is_refused_and_stores_nothing(
    client: Client, order: Order, payload: str, before: dict[str, Any], header: str
) -> None:
    response = post_raw(client, payload, HTTP_STRIPE_SIGNATURE=header)

    assert_error(response, 400, "invalid_signature")
    assert_nothing_stored(order, before, event_id_of(payload))


def test_a_signature_made_with_an_unknown_secret_is_refused_and_stores_nothing(
    client: Client, order: Order, payload: str, before: dict[str, Any]
) -> None:
    response = post_signed(client, payload, secret="whsec_test_someone_else")

    assert_error(response, 400, "invalid_signature")
    assert_nothing_stored(order, before, event_id_of(payload))


def test_a_body_changed_after_signing_is_refused_and_stores_nothing(
    client: Client, order: Order, payload: str, before: dict[str, Any]
) -> None:
    tampered = payload.replace('"amount_total": ', '"amount_total": 1')

    response = post_raw(client, tampered, HTTP_STRIPE_SIGNATURE=sign(payload))

    assert tampered != payload
    assert_error(response, 400, "invalid_signature")
    assert_nothing_stored(order, before, event_id_of(payload))


def test_a_signature_older_than_300_seconds_is_refused_and_stores_nothing(
    client: Client, order: Order, payload: str, before: dict[str, Any]
) -> None:
    response = post_signed(client, payload, timestamp=int(time.time()) - 301)

    assert_error(response, 400, "invalid_signature")
    assert_nothing_stored(order, before, event_id_of(payload))


def test_a_signature_more_than_300_seconds_in_the_future_is_refused_and_stores_nothing(
    client: Client, order: Order, payload: str, before: dict[str, Any]
) -> None:
    response = post_signed(client, payload, timestamp=int(time.time()) + 310)

    assert_error(response, 400, "invalid_signature")
    assert_nothing_stored(order, before, event_id_of(payload))


@pytest.mark.parametrize("skew", [-290, 290], ids=["290s-old", "290s-ahead"])
def test_a_signature_within_the_300_second_tolerance_is_accepted(
    client: Client, payload: str, skew: int
) -> None:
    response = post_signed(client, payload, timestamp=int(time.time()) + skew)

    assert response.status_code == 200, response.content
    assert StripeEvent.objects.filter(pk=event_id_of(payload)).exists()


@pytest.mark.parametrize(
    ("retired", "current"),
    [(WEBHOOK_SECRET, OTHER_SECRET), (OTHER_SECRET, WEBHOOK_SECRET)],
    ids=["old-retired", "new-retired"],
)
def test_a_secret_retired_by_rotation_is_refused_and_stores_nothing(
    client: Client,
    stripe_settings: Any,
    order: Order,
    payload: str,
    before: dict[str, Any],
    retired: str,
    current: str,
) -> None:
    stripe_settings.STRIPE_WEBHOOK_SECRETS = [current]

    response = post_signed(client, payload, secret=retired)

    assert_error(response, 400, "invalid_signature")
    assert_nothing_stored(order, before, event_id_of(payload))


@pytest.mark.parametrize("secret", [WEBHOOK_SECRET, OTHER_SECRET], ids=["first", "second"])
def test_either_of_two_current_secrets_is_accepted_during_rotation(
    client: Client, stripe_settings: Any, payload: str, secret: str
) -> None:
    stripe_settings.STRIPE_WEBHOOK_SECRETS = [WEBHOOK_SECRET, OTHER_SECRET]

    response = post_signed(client, payload, secret=secret)

    assert response.status_code == 200, response.content
    assert StripeEvent.objects.filter(pk=event_id_of(payload)).exists()


# The settings as a fresh process reads them from the environment, then one verification.
VERIFY_WITH_ENVIRONMENT_SECRETS = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djangomart.settings")
from django.conf import settings
from djangomart.payments import gateway
payload, header = sys.stdin.buffer.read(), sys.argv[1]
gateway.webhook_payload_verify(payload, header, settings.STRIPE_WEBHOOK_SECRETS)
"""


@pytest.mark.parametrize("secret", [WEBHOOK_SECRET, OTHER_SECRET], ids=["first", "second"])
def test_both_secrets_of_a_rotation_written_with_spaces_after_the_comma_are_accepted(
    payload: str, secret: str
) -> None:
    child = subprocess.run(
        [sys.executable, "-c", VERIFY_WITH_ENVIRONMENT_SECRETS, sign(payload, secret)],
        input=payload.encode(),
        env={**os.environ, "STRIPE_WEBHOOK_SECRETS": f" {WEBHOOK_SECRET} , {OTHER_SECRET} ,"},
        cwd=settings.BASE_DIR,
        capture_output=True,
        timeout=60,
    )

    assert child.returncode == 0, child.stderr.decode()


@pytest.mark.parametrize(
    "body",
    ['{"id": "evt_1", "object": "event",', "not json at all", ""],
    ids=["truncated", "text", "empty"],
)
def test_a_signed_body_that_is_not_json_is_refused_and_stores_nothing(
    client: Client, order: Order, before: dict[str, Any], body: str
) -> None:
    raw = body.encode("utf-8", errors="surrogateescape")
    text = raw.decode("utf-8", errors="replace")  # what the signature is checked against

    response = post_raw(client, raw, HTTP_STRIPE_SIGNATURE=sign(text))

    assert_error(response, 400, "invalid_event")
    assert_nothing_stored(order, before)


def test_a_body_that_is_not_utf8_is_refused_as_unsigned_and_stores_nothing(
    client: Client, order: Order, before: dict[str, Any]
) -> None:
    raw = b'{"id": "evt_1", "note": "\xff"}'
    # Stripe signs text; whatever a client computed over these bytes, they are refused.
    text = raw.decode("utf-8", errors="replace")

    response = post_raw(client, raw, HTTP_STRIPE_SIGNATURE=sign(text))

    assert_error(response, 400, "invalid_signature")
    assert_nothing_stored(order, before)


@pytest.mark.parametrize(
    "document",
    [
        [],
        [{"id": "evt_1", "type": "checkout.session.completed"}],
        "evt_1",
        None,
        42,
        {},
        {"object": "event", "created": 1700000000, "data": {"object": {}}},
        {"id": "evt_1", "created": 1700000000, "data": {"object": {}}},
        {"type": "charge.succeeded", "created": 1700000000, "data": {"object": {}}},
        {"id": "ch_1", "type": "charge.succeeded", "created": 1700000000, "data": {"object": {}}},
        {"id": 1, "type": "charge.succeeded", "created": 1700000000, "data": {"object": {}}},
        {"id": "evt_1", "type": 7, "created": 1700000000, "data": {"object": {}}},
        {"id": "evt_1", "type": "charge.succeeded", "data": {"object": {}}},
        {
            "id": "evt_1",
            "type": "charge.succeeded",
            "created": "2026-01-01",
            "data": {"object": {}},
        },
        {
            "id": "evt_1",
            "object": "charge",
            "type": "charge.succeeded",
            "created": 1700000000,
            "data": {"object": {}},
        },
    ],
    ids=[
        "empty-list",
        "list-of-events",
        "string",
        "null",
        "number",
        "empty-object",
        "no-id-no-type",
        "no-type",
        "no-id",
        "id-not-evt",
        "id-not-string",
        "type-not-string",
        "no-created",
        "created-not-int",
        "object-not-event",
    ],
)
def test_signed_json_that_is_not_an_event_is_refused_and_stores_nothing(
    client: Client, order: Order, before: dict[str, Any], document: Any
) -> None:
    response = post_signed(client, json.dumps(document))

    assert_error(response, 400, "invalid_event")
    assert_nothing_stored(order, before, "evt_1")


@pytest.mark.parametrize(
    "created",
    [10**20, -(10**20), 2**63, 253402300800, -1, True, 1.7e9, None],
    ids=["huge", "huge-negative", "int64", "year-10000", "negative", "bool", "float", "null"],
)
def test_a_signed_event_whose_created_is_not_a_time_is_refused_and_stores_nothing(
    client: Client, order: Order, before: dict[str, Any], created: Any
) -> None:
    """`created` must be Unix seconds that are a date (Python's and PostgreSQL's): a huge
    number once overflowed the conversion into a 500, which Stripe would retry for days."""
    event = json.loads(event_json("checkout.session.completed", session_object(order)))
    event["created"] = created

    response = post_signed(client, json.dumps(event))

    assert_error(response, 400, "invalid_event")
    assert_nothing_stored(order, before, event["id"])


@pytest.mark.parametrize(
    "data",
    [None, {}, {"object": None}, {"object": []}, {"object": "cs_test_1"}, [{"object": {}}]],
    ids=["no-data", "no-object", "null-object", "list-object", "string-object", "list-data"],
)
def test_a_signed_event_without_a_data_object_is_refused_and_stores_nothing(
    client: Client, order: Order, before: dict[str, Any], data: Any
) -> None:
    event = json.loads(event_json("checkout.session.completed", session_object(order)))
    if data is None:
        del event["data"]
    else:
        event["data"] = data
    body = json.dumps(event)

    response = post_signed(client, body)

    assert_error(response, 400, "invalid_event")
    assert_nothing_stored(order, before, event["id"])


def padded_event(order: Order, size: int) -> str:
    """A valid event for `order` whose JSON is exactly `size` bytes."""
    event = json.loads(event_json("charge.succeeded", {"object": "charge", "padding": ""}))
    event["data"]["object"]["metadata"] = {"order_id": str(order.pk)}
    body = json.dumps(event)
    event["data"]["object"]["padding"] = "x" * (size - len(body.encode()))
    body = json.dumps(event)
    assert len(body.encode()) == size
    return body


def test_a_signed_body_of_1_mib_plus_1_byte_is_refused_with_413_and_stores_nothing(
    client: Client, order: Order, before: dict[str, Any]
) -> None:
    body = padded_event(order, 1024 * 1024 + 1)

    response = post_signed(client, body)

    assert_error(response, 413, "payload_too_large")
    assert_nothing_stored(order, before, event_id_of(body))


def test_a_signed_body_of_exactly_1_mib_is_accepted(client: Client, order: Order) -> None:
    body = padded_event(order, MAX_BODY_BYTES)

    response = post_signed(client, body)

    assert response.status_code == 200, response.content
    assert StripeEvent.objects.filter(pk=event_id_of(body)).exists()


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete", "head"])
def test_a_method_other_than_post_is_refused_with_a_json_405(
    client: Client, order: Order, payload: str, before: dict[str, Any], method: str
) -> None:
    response = client.generic(
        method.upper(),
        URL,
        payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(payload),
    )

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    if method != "head":  # HEAD answers carry no body
        assert_error(response, 405, "method_not_allowed")
    assert_nothing_stored(order, before, event_id_of(payload))


# --- The good path: stored once, counted, one job, cheap ---


def test_a_signed_event_is_acknowledged_with_200(client: Client, payload: str) -> None:
    response = post_event(client, payload)

    assert response.status_code == 200
    assert response.json() == {"received": True, "duplicate": False}


def test_a_signed_checkout_session_event_is_stored_with_its_facts(
    client: Client, order: Order
) -> None:
    session = session_object(order, payment_intent="pi_test_stored_facts")
    payload = event_json("checkout.session.completed", session, created=1_790_000_000)

    post_event(client, payload)

    event = StripeEvent.objects.get(pk=event_id_of(payload))
    assert {
        "type": event.type,
        "api_version": event.api_version,
        "livemode": event.livemode,
        "stripe_created": event.stripe_created,
        "payload": event.payload,
        "object_id": event.object_id,
        "checkout_session_id": event.checkout_session_id,
        "payment_intent_id": event.payment_intent_id,
        "delivery_count": event.delivery_count,
        "status": event.status,
        "attempts": event.attempts,
        "order": event.order,
        "processed_at": event.processed_at,
    } == {
        "type": "checkout.session.completed",
        "api_version": "2026-10-28.endive",
        "livemode": False,
        "stripe_created": datetime.fromtimestamp(1_790_000_000, UTC),
        "payload": json.loads(payload),
        "object_id": order.stripe_checkout_session_id,
        "checkout_session_id": order.stripe_checkout_session_id,
        "payment_intent_id": "pi_test_stored_facts",
        "delivery_count": 1,
        "status": "received",
        "attempts": 0,
        "order": None,
        "processed_at": None,
    }


@pytest.mark.parametrize(
    ("event_type", "obj", "intent_id"),
    [
        ("payment_intent.succeeded", {"id": "pi_test_1", "object": "payment_intent"}, "pi_test_1"),
        (
            "charge.succeeded",
            {"id": "ch_test_1", "object": "charge", "payment_intent": "pi_test_2"},
            "pi_test_2",
        ),
        ("customer.created", {"id": "cus_test_1", "object": "customer"}, ""),
    ],
    ids=["payment-intent", "charge", "unrelated"],
)
def test_a_signed_event_records_the_payment_intent_it_is_about(
    client: Client, stripe_settings: Any, event_type: str, obj: dict[str, Any], intent_id: str
) -> None:
    payload = event_json(event_type, obj)

    post_event(client, payload)

    event = StripeEvent.objects.get(pk=event_id_of(payload))
    assert (event.object_id, event.checkout_session_id, event.payment_intent_id) == (
        obj["id"],
        "",
        intent_id,
    )


def test_a_stored_event_is_due_for_a_worker_at_once_and_queues_no_job(
    client: Client, payload: str
) -> None:
    post_event(client, payload)

    assert is_due(event_id_of(payload))
    assert event_jobs() == []  # the row is the work (the inbox is the queue)


def test_a_repeated_delivery_is_acknowledged_as_a_duplicate(client: Client, payload: str) -> None:
    post_event(client, payload)

    response = post_event(client, payload)

    assert response.status_code == 200
    assert response.json() == {"received": True, "duplicate": True}


def test_a_repeated_delivery_is_counted_on_the_stored_event(client: Client, payload: str) -> None:
    post_event(client, payload)
    post_event(client, payload)

    event = StripeEvent.objects.get(pk=event_id_of(payload))
    assert (event.delivery_count, event.status, StripeEvent.objects.count()) == (2, "received", 1)


def test_a_repeated_delivery_of_a_processed_event_does_not_make_it_due_again(
    client: Client, payload: str
) -> None:
    post_event(client, payload)
    stripe_event_process(event_id=event_id_of(payload))
    post_event(client, payload)

    event = StripeEvent.objects.get(pk=event_id_of(payload))
    assert (event.status, event.attempts, event.delivery_count) == ("processed", 1, 2)
    assert not is_due(event.pk)


def test_a_repeated_delivery_keeps_the_first_payload(client: Client, order: Order) -> None:
    """Stripe resends the same event; a replayed body must not rewrite what was stored."""
    first = event_json("checkout.session.completed", session_object(order), event_id="evt_same")
    second = event_json(
        "checkout.session.completed", session_object(order, amount_total=1), event_id="evt_same"
    )
    post_event(client, first)

    post_event(client, second)

    assert StripeEvent.objects.get(pk="evt_same").payload == json.loads(first)


def test_the_ingest_changes_no_order(
    client: Client, order: Order, payload: str, before: dict[str, Any]
) -> None:
    post_event(client, payload)

    assert order_state(order.pk) == before


def statements(ctx: CaptureQueriesContext) -> list[str]:
    """The statements a request ran, without the test transaction's savepoints."""
    return [
        q["sql"]
        for q in ctx.captured_queries
        if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
    ]


def test_the_ingest_runs_only_the_event_upsert(client: Client, payload: str) -> None:
    with CaptureQueriesContext(connection) as ctx:
        post_event(client, payload)

    sql = statements(ctx)
    assert len(sql) == 1, sql
    assert sql[0].lstrip().startswith("INSERT INTO payments_stripeevent")
    assert "ON CONFLICT (id)" in sql[0]


def test_a_repeated_delivery_runs_only_the_event_upsert(client: Client, payload: str) -> None:
    post_event(client, payload)

    with CaptureQueriesContext(connection) as ctx:
        post_event(client, payload)

    sql = statements(ctx)
    assert len(sql) == 1, sql
    assert sql[0].lstrip().startswith("INSERT INTO payments_stripeevent")


def test_the_ingest_neither_reads_nor_locks_orders(client: Client, payload: str) -> None:
    with CaptureQueriesContext(connection) as ctx:
        post_event(client, payload)

    for sql in statements(ctx):
        assert "FOR UPDATE" not in sql.upper()
        assert "orders_order" not in sql


@pytest.fixture
def stripe_listener(stripe_settings: Any) -> Iterator[socket.socket]:
    """A socket where the gateway would connect if anything called Stripe."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    stripe_settings.STRIPE_API_BASE = f"http://127.0.0.1:{listener.getsockname()[1]}"
    gateway.client_reset()
    yield listener
    listener.close()


def test_the_ingest_makes_no_stripe_call(
    client: Client, stripe_listener: socket.socket, payload: str
) -> None:
    response = post_event(client, payload)

    assert response.status_code == 200
    with pytest.raises(BlockingIOError):
        stripe_listener.accept()


@pytest.mark.django_db(transaction=True)
def test_the_ingest_answers_while_another_transaction_holds_the_order_lock(
    client: Client, order: Order, payload: str
) -> None:
    with held_transaction(order_row_locked(order.pk)):
        with connection.cursor() as cursor:
            # Were the ingest to wait for the order lock, it fails fast instead of hanging.
            cursor.execute("SET lock_timeout = '2s'")
        try:
            response = post_event(client, payload)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")

    assert response.status_code == 200, response.content


def test_a_database_failure_is_answered_503_so_that_stripe_retries(
    client: Client, order: Order, payload: str, before: dict[str, Any]
) -> None:
    # DDL is transactional in PostgreSQL: the rename lives in this test's transaction
    # (no other connection ever sees it) and the test's rollback would undo it anyway.
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE payments_stripeevent RENAME TO payments_stripeevent_away")
    try:
        response = post_event(client, payload)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE payments_stripeevent_away RENAME TO payments_stripeevent")

    assert_error(response, 503, "service_unavailable")
    assert_nothing_stored(order, before, event_id_of(payload))


def test_a_database_that_does_not_answer_in_time_is_a_503(
    client: Client, order: Order, payload: str
) -> None:
    """Another connection holds the inbox table; the request's statement times out."""

    def table_locked() -> None:
        with connection.cursor() as cursor:
            cursor.execute("LOCK TABLE payments_stripeevent IN ACCESS EXCLUSIVE MODE")

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL statement_timeout = '300ms'")
    with held_transaction(table_locked):
        response = post_event(client, payload)

    assert_error(response, 503, "service_unavailable")


# --- After the worker: events the engine does not act on, and unknown orders ---


def ignored_event(event_type: str, order: Order) -> str:
    intent_id = f"pi_test_{uuid.uuid4().hex[:24]}"
    if event_type == "charge.succeeded":
        obj = {
            "id": f"ch_test_{uuid.uuid4().hex[:24]}",
            "object": "charge",
            "amount": order.total,
            "amount_captured": order.total,
            "currency": order.currency,
            "metadata": {"order_id": str(order.pk)},
            "paid": True,
            "payment_intent": intent_id,
            "status": "succeeded",
        }
    else:
        status = (
            "canceled" if event_type == "payment_intent.canceled" else "requires_payment_method"
        )
        obj = intent_object(order, intent_id, status=status, amount_received=0)
    return event_json(event_type, obj)


IGNORED_TYPES = ["payment_intent.created", "payment_intent.canceled", "charge.succeeded"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("event_type", IGNORED_TYPES)
def test_an_event_the_engine_does_not_act_on_is_stored_as_ignored(
    client: Client, order: Order, event_type: str
) -> None:
    payload = ignored_event(event_type, order)
    assert post_event(client, payload).status_code == 200

    # Stored `ignored` by the acknowledgement itself: no worker spends a transaction on it.
    event = StripeEvent.objects.get(pk=event_id_of(payload))
    assert (event.status, event.attempts, event.last_error) == ("ignored", 0, "")
    assert event.processed_at is not None
    assert not events_due().filter(pk=event.pk).exists()
    run_jobs()
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("ignored", 0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("event_type", IGNORED_TYPES)
def test_an_event_the_engine_does_not_act_on_changes_no_order(
    client: Client, order: Order, before: dict[str, Any], event_type: str
) -> None:
    post_event(client, ignored_event(event_type, order))

    run_jobs()

    assert order_state(order.pk) == before


@pytest.fixture
def unknown_order_payload(order: Order) -> str:
    """A paid session whose order id, session id and payment intent are all unknown."""
    session = session_object(
        order,
        id=f"cs_test_{uuid.uuid4().hex}",
        client_reference_id=str(uuid.uuid4()),
        metadata={"order_id": str(uuid.uuid4())},
        payment_intent=f"pi_test_{uuid.uuid4().hex[:24]}",
    )
    return event_json("checkout.session.completed", session)


@pytest.mark.django_db(transaction=True)
def test_an_event_for_an_unknown_order_is_stored_as_unmatched(
    client: Client, unknown_order_payload: str
) -> None:
    post_event(client, unknown_order_payload)

    run_jobs()

    event = StripeEvent.objects.get(pk=event_id_of(unknown_order_payload))
    assert (event.status, event.order, bool(event.last_error)) == ("unmatched", None, True)


@pytest.mark.django_db(transaction=True)
def test_an_event_for_an_unknown_order_changes_no_order(
    client: Client, order: Order, before: dict[str, Any], unknown_order_payload: str
) -> None:
    post_event(client, unknown_order_payload)

    run_jobs()

    assert order_state(order.pk) == before


def test_a_signed_event_postgresql_cannot_store_is_refused_with_400_not_503(
    client: Client, order: Order, before: dict[str, Any]
) -> None:
    """A \\u0000 in a string is valid JSON but not storable in jsonb: retrying can never
    succeed, so it is a 400 with an error in the log, not a 503."""
    payload = event_json(
        "payment_intent.created", intent_object(order, "pi_test_nul", description="a\u0000b")
    )
    response = post_raw(client, payload.encode(), HTTP_STRIPE_SIGNATURE=sign(payload))
    assert_error(response, 400, "invalid_event")
    assert_nothing_stored(order, before)
