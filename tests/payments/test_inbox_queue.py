"""The inbox is the workers' queue (payments.inbox, payments.inbox_worker), proven with
real workers: threads with their own database connections, started together at a
barrier. A committed event wakes a listening worker; two workers share a backlog and
process every event once; a worker never waits for an event another holds, and the
ingest never waits for a worker; the worker loop outlives a lost connection."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from io import StringIO
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client

from devtools.embedded_db import REPO_ROOT
from djangomart.orders.models import Order, OrderEvent
from djangomart.payments import inbox
from djangomart.payments.handlers import HANDLERS
from djangomart.payments.inbox_worker import (
    CHANNEL,
    _Listener,
    stripe_events_work,
    stripe_events_worker_run,
)
from djangomart.payments.models import StripeEvent
from tests.conftest import database_url
from tests.logs import json_lines
from tests.payments.builders import order_build
from tests.payments.conftest import event_json, post_event, session_object
from tests.payments.race_helpers import (
    held_transaction,
    in_threads,
    lock_waiters_wait,
    wait_until,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("stripe_settings", "demo_catalog"),
]


def paid_session(order: Order) -> str:
    intent = f"pi_test_{uuid.uuid4().hex[:24]}"
    return event_json("checkout.session.completed", session_object(order, payment_intent=intent))


def stored(payload: str) -> str:
    event = inbox.event_parse(payload.encode())
    assert inbox.event_store(event, payload.encode())
    return str(event["id"])


@pytest.fixture
def listener() -> Iterator[psycopg.Connection[Any]]:
    """A connection of its own LISTENing on the workers' channel, as a worker does."""
    params = connection.get_connection_params()
    keys = {"host", "port", "user", "password", "dbname"}
    conn = psycopg.connect(autocommit=True, **{k: v for k, v in params.items() if k in keys})
    conn.execute(f"LISTEN {CHANNEL}")
    yield conn
    conn.close()


def notified(conn: psycopg.Connection[Any], timeout: float) -> bool:
    """Whether a notification arrives within `timeout` (or came already)."""
    return any(True for _ in conn.notifies(timeout=timeout, stop_after=1))


def test_a_stored_event_wakes_a_listening_worker_and_is_committed_by_the_ack(
    client: Client, listener: psycopg.Connection[Any]
) -> None:
    payload = paid_session(order_build())
    assert post_event(client, payload).status_code == 200
    assert notified(listener, timeout=2)
    # Committed by the one statement: another connection sees it, due.
    row = listener.execute(
        "SELECT status, next_attempt_at <= now() FROM payments_stripeevent WHERE id = %s",
        [json.loads(payload)["id"]],
    ).fetchone()
    assert row == ("received", True)
    # A repeated delivery only counts: nothing new to do, no worker woken.
    assert post_event(client, payload).json()["duplicate"] is True
    assert not notified(listener, timeout=0.5)


def test_while_events_are_already_due_storing_more_wakes_nobody(
    listener: psycopg.Connection[Any],
) -> None:
    """In a storm the workers are busy anyway: only the first event of a quiet queue
    sends the NOTIFY (each one serializes commits), the ones behind it send none."""
    stored(paid_session(order_build()))
    assert notified(listener, timeout=2)
    for _ in range(5):
        stored(paid_session(order_build()))
    assert not notified(listener, timeout=0.5)
    assert stripe_events_work() == 6
    stored(paid_session(order_build()))  # quiet again: this one wakes a worker
    assert notified(listener, timeout=2)


def test_a_replay_and_a_requeue_wake_the_workers_too(listener: psycopg.Connection[Any]) -> None:
    order = order_build()
    event_id = stored(paid_session(order))
    StripeEvent.objects.filter(pk=event_id).update(status="dead")
    assert notified(listener, timeout=2)  # the store's own notification
    inbox.stripe_event_replay(event_id=event_id)
    assert notified(listener, timeout=2)

    StripeEvent.objects.filter(pk=event_id).update(status="unmatched", order=order)
    assert not notified(listener, timeout=0.2)  # (not received: nothing to do)
    intent_id = StripeEvent.objects.get(pk=event_id).payment_intent_id
    with transaction.atomic():
        assert inbox.stripe_events_waiting_requeue(order_id=order.pk, intent_id=intent_id) == 1
    assert notified(listener, timeout=2)


def test_two_workers_process_a_backlog_each_event_once() -> None:
    orders = [order_build() for _ in range(20)]
    event_ids = [stored(paid_session(order)) for order in orders for _ in range(3)]
    done = in_threads(2, lambda i: stripe_events_work())
    assert all(isinstance(n, int) for n in done), done
    assert sum(done) == len(event_ids)
    rows = StripeEvent.objects.filter(pk__in=event_ids)
    assert {(row.status, row.attempts) for row in rows} == {("processed", 1)}
    for order in orders:
        order.refresh_from_db()
        assert (order.status, order.payment_status) == ("paid", "paid")
        transitions = order.events.filter(kind=OrderEvent.Kind.TRANSITION, to_status="paid")
        assert transitions.count() == 1
    assert inbox.stripe_events_due() == 0


def claim_held(event_id: str) -> Any:
    """Work for held_transaction: another worker holding `event_id`."""
    return lambda: inbox._claim(event_id)


def test_a_worker_skips_an_event_another_worker_holds_without_waiting() -> None:
    held = stored(paid_session(order_build()))
    time.sleep(0.01)  # due strictly after the held one
    other = stored(paid_session(order_build()))
    with held_transaction(claim_held(held)):
        started = time.monotonic()
        assert inbox.stripe_event_process_next() == (other, "processed")
        assert inbox.stripe_event_process_next() is None  # only the held one is left
        assert time.monotonic() - started < 2
        assert StripeEvent.objects.get(pk=held).status == "received"
    assert inbox.stripe_event_process_next() == (held, "processed")


def test_the_ingest_acknowledges_a_repeat_while_a_worker_is_stuck_on_that_event(
    client: Client,
) -> None:
    order = order_build()
    payload = paid_session(order)
    post_event(client, payload)

    def work() -> None:
        stripe_events_work()
        connection.close()

    worker = threading.Thread(target=work)
    with held_transaction(lambda: Order.objects.select_for_update().get(pk=order.pk)):
        worker.start()
        lock_waiters_wait(1)  # the worker holds the event and waits for its order
        started = time.monotonic()
        response = post_event(client, payload)
        elapsed = time.monotonic() - started
    worker.join(10)
    assert (response.status_code, response.json()["duplicate"]) == (200, True)
    assert elapsed < 1, f"the ack waited {elapsed:.2f} s behind the worker"
    event = StripeEvent.objects.get(pk=json.loads(payload)["id"])
    assert (event.status, event.attempts, event.delivery_count) == ("processed", 1, 2)


def other_backends(*, listening: bool = False) -> list[int]:
    """The test database's other client connections (here: the worker's); `listening`:
    those whose last statement was the LISTEN (a fresh connection, waiting)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
            " AND (NOT %s OR query = %s)",
            [listening, f"LISTEN {CHANNEL}"],
        )
        return [row[0] for row in cursor.fetchall()]


def test_the_worker_loop_wakes_on_notify_and_outlives_a_lost_connection() -> None:
    stop = threading.Event()
    processed: list[int] = []

    def run() -> None:
        # Idle for a minute between polls: only a notification can wake it in time.
        processed.append(stripe_events_worker_run(stop, idle_wait=60))
        connection.close()

    worker = threading.Thread(target=run)
    worker.start()
    try:
        wait_until(lambda: len(other_backends(listening=True)) == 1, what="the worker listening")
        first = stored(paid_session(order_build()))
        wait_until(lambda: StripeEvent.objects.get(pk=first).status == "processed", timeout=5)

        # Its connection is killed while it waits (PostgreSQL restarted, a proxy cut it).
        [pid] = other_backends()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        wait_until(
            lambda: other_backends(listening=True) not in ([], [pid]), what="a new connection"
        )
        second = stored(paid_session(order_build()))
        wait_until(lambda: StripeEvent.objects.get(pk=second).status == "processed", timeout=5)
    finally:
        stop.set()
        worker.join(5)
    assert not worker.is_alive()
    assert processed == [2]


def test_the_worker_commits_its_processing_asynchronously_and_the_ack_synchronously() -> None:
    """The event workers' sessions skip the disk flush per COMMIT (inbox_worker._Listener
    says why that is safe); every other connection, the webhook's included, keeps it."""

    def setting() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            return str(cursor.fetchone()[0])

    seen: list[str] = []

    def worker() -> None:
        listener = _Listener()
        listener.configure()
        seen.append(setting())
        connection.close()  # a new connection is configured again
        listener.configure()
        seen.append(setting())
        connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(10)
    assert seen == ["off", "off"]
    assert setting() == "on"


def test_the_command_drains_what_is_due_and_exits() -> None:
    orders = [order_build() for _ in range(3)]
    for order in orders:
        stored(paid_session(order))
    out = StringIO()
    call_command("stripe_events_worker", "--drain", stdout=out)
    assert out.getvalue().strip() == "3 events processed"
    assert {Order.objects.get(pk=o.pk).status for o in orders} == {"paid"}


def test_a_failing_event_never_stops_the_worker_and_waits_for_its_retry_time() -> None:
    order = order_build()
    bad = event_json("checkout.session.completed", session_object(order, amount_total="abc"))
    bad_id = stored(bad)
    good = stored(paid_session(order_build()))
    assert stripe_events_work() == 2
    rows = dict(StripeEvent.objects.values_list("pk", "status"))
    assert (rows[bad_id], rows[good]) == ("failed", "processed")
    assert stripe_events_work() == 0  # not due again yet
    with transaction.atomic():
        StripeEvent.objects.filter(pk=bad_id).update(next_attempt_at="2000-01-01T00:00:00Z")
    assert stripe_events_work() == 1
    assert StripeEvent.objects.get(pk=bad_id).attempts == 2


def advisory_locks_held() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


@pytest.mark.parametrize("plan", ["index", "seq scan and sort"])
def test_a_claim_holds_exactly_one_event_whatever_the_plan(plan: str) -> None:
    for _ in range(40):
        stored(paid_session(order_build()))
    with transaction.atomic():
        if plan != "index":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL enable_indexscan = off")
                cursor.execute("SET LOCAL enable_bitmapscan = off")
        assert inbox._claim_next() is not None
        assert advisory_locks_held() == 1


def test_a_worker_finds_a_free_event_behind_many_held_ones() -> None:
    held = [stored(paid_session(order_build())) for _ in range(40)]
    time.sleep(0.01)
    free = stored(paid_session(order_build()))

    def hold_all() -> None:
        for event_id in held:
            inbox._claim(event_id)

    with held_transaction(hold_all):
        assert inbox.stripe_event_process_next() == (free, "processed")


def test_racing_workers_never_attempt_a_failed_event_again_before_its_backoff() -> None:
    """A failure is recorded under the claim that attempted it: a second worker racing for
    the same event finds it not due (or held) and never runs its handler at once."""
    for _ in range(15):
        order = order_build()
        bad = event_json("checkout.session.completed", session_object(order, amount_total="x"))
        bad_id = stored(bad)
        results = in_threads(
            2, lambda i: (inbox.stripe_event_process_next(), inbox.stripe_event_process_next())
        )
        assert not [r for r in results if isinstance(r, Exception)], results
        event = StripeEvent.objects.get(pk=bad_id)
        assert (event.status, event.attempts) == ("failed", 1)


def test_an_older_release_storing_events_without_the_new_column_still_stores_due_ones() -> None:
    """Between `migrate` and the web restart, the previous release's INSERT (which names
    no next_attempt_at) keeps working: the column has a database default."""
    payload = json.loads(paid_session(order_build()))
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO payments_stripeevent (
                id, type, api_version, livemode, stripe_created, payload, received_at,
                delivery_count, object_id, checkout_session_id, payment_intent_id, status,
                attempts, last_error, last_traceback, updated_at, source
            ) VALUES (%s, %s, '', false, now(), %s::jsonb, now(), 1, '', '', '', 'received',
                      0, '', '', now(), 'webhook')""",
            [payload["id"], payload["type"], json.dumps(payload)],
        )
    assert inbox.stripe_events_due() == 1
    assert stripe_events_work() == 1
    assert StripeEvent.objects.get(pk=payload["id"]).status == "processed"


def test_the_worker_command_stops_on_sigterm_after_its_event() -> None:
    url = database_url(connection.get_connection_params(), connection.settings_dict["NAME"])
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "1"}
    child = subprocess.Popen(
        [sys.executable, "manage.py", "stripe_events_worker"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        event_id = stored(paid_session(order_build()))
        wait_until(lambda: StripeEvent.objects.get(pk=event_id).status == "processed", timeout=20)
        child.send_signal(signal.SIGTERM)
        output, _ = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, output
    messages = [line["message"] for line in json_lines(output)]
    assert messages[0] == "stripe events worker started"
    assert messages[-1] == "stripe events worker stopped"


def test_an_event_whose_attempt_kills_its_connection_is_counted_and_backs_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An attempt that loses its own transaction (here the handler's statement ends its
    backend) is recorded after reconnecting: otherwise such an event would be retried
    forever, the oldest due, and never be dead."""

    def connection_killer(event: Any, order: Any) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    monkeypatch.setitem(HANDLERS, "checkout.session.completed", connection_killer)
    event_id = stored(paid_session(order_build()))
    assert inbox.stripe_event_process_next() == (event_id, "failed")
    event = StripeEvent.objects.get(pk=event_id)
    assert (event.status, event.attempts) == ("failed", 1)
    assert "terminat" in event.last_error.lower() or "connection" in event.last_error.lower()
    assert inbox.stripe_events_due() == 0  # backing off
