"""Crashes: real child processes killed with SIGKILL at the worst moment.

A worker killed inside its processing transaction leaves the event unprocessed and the
order untouched, and the restarted worker processes it exactly once. A web process
killed after its commit and before its answer turns Stripe's retry into a harmless
duplicate."""

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import Client

from djangomart.orders.models import Order, OrderEvent
from djangomart.payments.models import Payment, StripeEvent
from tests.payments.conftest import event_json, post_event, run_jobs, session_object
from tests.payments.race_helpers import (
    backend_exists,
    held_transaction,
    is_due,
    lock_waiters_wait,
    order_pending,
    order_row_locked,
    order_state,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)

# A fresh interpreter with the project's settings, on this test run's database.
CHILD_PRELUDE = """
import os, signal, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djangomart.settings")
from django.conf import settings
settings.DATABASES["default"]["NAME"] = sys.argv[1]
import django
django.setup()
from django.db import connection
"""

WORKER = (
    CHILD_PRELUDE
    + """
from djangomart.payments.inbox import stripe_event_process
with connection.cursor() as cursor:
    cursor.execute("SELECT pg_backend_pid()")
    print(f"backend_pid={cursor.fetchone()[0]}", flush=True)
print(f"outcome={stripe_event_process(event_id=sys.argv[2])}", flush=True)
"""
)

# Stores the event exactly as the webhook view does (commit included), then dies
# before a single byte of the answer could be sent.
STORE_THEN_DIE = (
    CHILD_PRELUDE
    + """
from djangomart.payments.inbox import event_parse, event_store
payload = sys.stdin.buffer.read()
event_store(event_parse(payload), payload)
os.kill(os.getpid(), signal.SIGKILL)
"""
)


def child_start(script: str, *args: str, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, str(connection.settings_dict["NAME"]), *args],
        cwd=settings.BASE_DIR,
        env=dict(os.environ),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        **popen,
    )


def backend_pid_read(child: subprocess.Popen[str]) -> int:
    """The child's PostgreSQL backend pid, from its output (log lines come first)."""
    assert child.stdout is not None
    seen = []
    for line in child.stdout:
        if line.startswith("backend_pid="):
            return int(line.split("=", 1)[1])
        seen.append(line)
    raise AssertionError(f"the child exited with {child.wait()}: {''.join(seen)}")


def event_claimed(event_id: str) -> bool:
    """Whether another transaction holds the event's processing claim (the advisory lock
    taken by inbox._claim)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))",
            [f"stripe_event:{event_id}"],
        )
        row = cursor.fetchone()
    return row is not None and not row[0]


def paid_event(order: Order, intent_id: str) -> str:
    """checkout.session.completed, paid in full; found by its metadata.order_id."""
    return event_json("checkout.session.completed", session_object(order, payment_intent=intent_id))


# --- A worker killed inside its processing transaction ---


@dataclass
class KilledWorker:
    order: Order
    event_id: str
    before: dict[str, Any]


@dataclass(frozen=True)
class Blocker:
    """Another transaction the worker will wait behind, and the statement it waits in."""

    name: str
    hold: Callable[[Order, str], Callable[[], object]]
    waits_in: str


def order_lock_held(order: Order, intent_id: str) -> Callable[[], object]:
    """The worker claims the event, then waits for the order's row lock."""
    return order_row_locked(order.pk)


def same_payment_insert_held(order: Order, intent_id: str) -> Callable[[], object]:
    """The worker claims the event, locks the order, writes the session id onto it, then
    waits on the Payment's unique index behind this uncommitted insert of the same
    PaymentIntent (for another order, created and rolled back in the same transaction)."""
    return lambda: Payment.objects.create(order=order_pending(), stripe_payment_intent_id=intent_id)


BLOCKERS = [
    # The start of the statement: pg_stat_activity keeps only its first 1024 bytes, which
    # the order's column list alone outgrows.
    Blocker("waiting-for-the-order-lock", order_lock_held, 'SELECT "orders_order"."id"'),
    Blocker("after-writing-the-order", same_payment_insert_held, 'INSERT INTO "payments_payment"'),
]


def waiting_in(pid: int) -> str | None:
    """The statement backend `pid` is blocked in on a lock, if it is."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT query FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'",
            [pid],
        )
        row = cursor.fetchone()
    return None if row is None else str(row[0])


@pytest.fixture(params=BLOCKERS, ids=lambda blocker: blocker.name)
def killed_worker(request: Any, client: Client, stripe_settings: Any) -> KilledWorker:
    """A stored paid session; a worker process blocked in the middle of processing it
    (waiting in pg_stat_activity, the event row claimed), killed with SIGKILL; then the
    blocker goes and the dead worker's backend ends."""
    blocker: Blocker = request.param
    order = order_pending(with_session=False)
    intent_id = f"pi_test_{uuid.uuid4().hex[:24]}"
    payload = paid_event(order, intent_id)
    event_id = json.loads(payload)["id"]
    assert post_event(client, payload).status_code == 200
    before = order_state(order.pk)

    with held_transaction(blocker.hold(order, intent_id)):
        child = child_start(WORKER, event_id)
        try:
            pid = backend_pid_read(child)
            wait_until(lambda: waiting_in(pid) is not None, what="the worker to wait for a lock")
            assert blocker.waits_in in str(waiting_in(pid))
            assert event_claimed(event_id), "the worker had not claimed the event"
        finally:
            child.send_signal(signal.SIGKILL)
            exit_code = child.wait(10)
            assert child.stdout is not None
            child.stdout.close()
    assert exit_code == -signal.SIGKILL
    # Its backend got the lock once the blocker went, found the client gone and rolled back.
    wait_until(lambda: not backend_exists(pid), what="the dead worker's backend to end")
    return KilledWorker(order=order, event_id=event_id, before=before)


def test_a_worker_killed_in_its_transaction_leaves_the_event_unprocessed(
    killed_worker: KilledWorker,
) -> None:
    event = StripeEvent.objects.get(pk=killed_worker.event_id)

    assert (event.status, event.attempts, event.processed_at, event.order) == (
        "received",
        0,
        None,
        None,
    )


def test_a_worker_killed_in_its_transaction_leaves_the_order_unchanged(
    killed_worker: KilledWorker,
) -> None:
    assert order_state(killed_worker.order.pk) == killed_worker.before


def test_a_worker_killed_in_its_transaction_leaves_no_timeline_entry(
    killed_worker: KilledWorker,
) -> None:
    assert not OrderEvent.objects.filter(stripe_event_id=killed_worker.event_id).exists()


def test_after_a_worker_was_killed_the_next_worker_processes_the_event_once(
    killed_worker: KilledWorker,
) -> None:
    run_jobs()

    event = StripeEvent.objects.get(pk=killed_worker.event_id)
    assert (event.status, event.attempts) == ("processed", 1)


def test_after_a_worker_was_killed_the_order_is_paid_exactly_once(
    killed_worker: KilledWorker,
) -> None:
    run_jobs()

    order = Order.objects.get(pk=killed_worker.order.pk)
    timeline = list(
        order.events.filter(stripe_event_id=killed_worker.event_id).values_list(
            "kind", "from_status", "to_status"
        )
    )
    assert timeline == [("transition", "pending", "paid")]
    assert (order.status, order.amount_paid, order.payments.count()) == (
        "paid",
        order.total,
        1,
    )


# --- A web process killed after its commit, before its answer ---


@dataclass
class WebCrash:
    order: Order
    payload: str
    event_id: str


@pytest.fixture
def web_crash(stripe_settings: Any) -> WebCrash:
    order = order_pending()
    payload = paid_event(order, f"pi_test_{uuid.uuid4().hex[:24]}")
    child = child_start(STORE_THEN_DIE, stdin=subprocess.PIPE)
    output, _ = child.communicate(payload, timeout=30)
    assert child.returncode == -signal.SIGKILL, output
    return WebCrash(order, payload, json.loads(payload)["id"])


def test_an_event_committed_before_the_web_process_died_is_kept(web_crash: WebCrash) -> None:
    event = StripeEvent.objects.get(pk=web_crash.event_id)

    assert (event.status, event.delivery_count, is_due(web_crash.event_id)) == (
        "received",
        1,
        True,
    )


def test_stripes_retry_after_a_web_crash_is_acknowledged_as_a_duplicate(
    web_crash: WebCrash, client: Client
) -> None:
    response = post_event(client, web_crash.payload)

    assert (response.status_code, response.json()) == (200, {"received": True, "duplicate": True})


def test_stripes_retry_after_a_web_crash_is_counted_as_a_second_delivery(
    web_crash: WebCrash, client: Client
) -> None:
    post_event(client, web_crash.payload)

    assert StripeEvent.objects.get(pk=web_crash.event_id).delivery_count == 2


def test_stripes_retry_after_a_web_crash_gets_the_event_processed_once(
    web_crash: WebCrash, client: Client
) -> None:
    post_event(client, web_crash.payload)
    run_jobs()

    event = StripeEvent.objects.get(pk=web_crash.event_id)
    assert (event.status, event.attempts, event.delivery_count) == ("processed", 1, 2)
    transitions = web_crash.order.events.filter(kind=OrderEvent.Kind.TRANSITION)
    assert list(transitions.values_list("to_status", flat=True)) == ["paid"]


def test_after_a_web_crash_and_stripes_retry_the_order_is_paid_exactly_once(
    web_crash: WebCrash, client: Client
) -> None:
    post_event(client, web_crash.payload)

    run_jobs()

    order = Order.objects.get(pk=web_crash.order.pk)
    transitions = order.events.filter(kind=OrderEvent.Kind.TRANSITION)
    assert list(transitions.values_list("to_status", "stripe_event_id")) == [
        ("paid", web_crash.event_id)
    ]
    assert (order.status, order.amount_paid) == ("paid", order.total)


# --- A real event worker process killed in the middle of its event ---

REAL_WORKER = (
    CHILD_PRELUDE
    + """
from djangomart.payments.inbox_worker import stripe_events_work
stripe_events_work()
"""
)


def test_after_a_worker_process_is_killed_mid_event_the_next_worker_processes_it_once(
    client: Client, stripe_settings: Any
) -> None:
    order = order_pending()
    payload = paid_event(order, f"pi_test_{uuid.uuid4().hex[:24]}")
    event_id = json.loads(payload)["id"]
    assert post_event(client, payload).status_code == 200
    with held_transaction(order_row_locked(order.pk)):
        child = child_start(REAL_WORKER)
        try:
            waiting = lock_waiters_wait(1)  # the worker's job, inside its transaction
            assert event_claimed(event_id)
        finally:
            child.send_signal(signal.SIGKILL)
            child.communicate(timeout=10)
    wait_until(lambda: not any(map(backend_exists, waiting)), what="the dead worker's backend")
    # Its claim died with its connection: the event is due at once, nothing to sweep.
    assert StripeEvent.objects.get(pk=event_id).status == "received"
    assert is_due(event_id)
    run_jobs()

    event = StripeEvent.objects.get(pk=event_id)
    transitions = order.events.filter(kind=OrderEvent.Kind.TRANSITION)
    assert (event.status, event.attempts) == ("processed", 1)
    assert list(transitions.values_list("to_status", "stripe_event_id")) == [("paid", event_id)]
