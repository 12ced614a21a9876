"""The Stripe event workers. The inbox is their queue (payments.inbox): each worker
process claims the next due event, processes it in its own transaction, and goes on
until none is due; then it waits for the NOTIFY that the inbox's trigger sends when an
event becomes `received` while nothing else is due (a new delivery, a requeue, a
replay), or one second, which also finds failed events whose retry time has come and
an event whose notification was skipped because another looked due a moment before.

Run as `manage.py stripe_events_worker`, as many processes as the database can feed
(docs/deployment.md). Any number of them, on any number of machines, share the work:
the claim skips events another worker holds, and a worker that dies lets go of its
event with its connection. A lost database connection (PostgreSQL restarting) is waited
out and the loop carries on.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from django.db import InterfaceError, OperationalError, connection

from djangomart.payments.inbox import stripe_event_process_next

logger = logging.getLogger(__name__)

CHANNEL = "djangomart_stripe_events"  # the trigger's (payments/migrations/0004)
IDLE_WAIT_SECONDS = 1.0
STOP_CHECK_SECONDS = 0.5
OUTAGE_WAIT_SECONDS = (0.2, 5.0)  # first and longest wait while the database is away


def stripe_events_work(*, stop: Callable[[], bool] = lambda: False) -> int:
    """Processes due events, one transaction each, until none is due or `stop()`;
    returns how many it processed."""
    done = 0
    while not stop() and stripe_event_process_next() is not None:
        done += 1
    return done


class _Listener:
    """The worker's own Django connection and its session settings, applied again
    whenever Django has opened a new connection: LISTEN (the session outlives
    transactions) before waiting, and synchronous_commit off before working."""

    def __init__(self) -> None:
        self.subscribed: object = None
        self.configured: object = None

    def configure(self) -> None:
        """A processing transaction's COMMIT then returns before its WAL reaches the disk
        (PostgreSQL writes it within wal_writer_delay, 200 ms by default), which saves a
        disk flush per event. Safe here, and only here: what a crash of PostgreSQL can
        lose is whole transactions, never part of one, and everything such a transaction
        did (the event marked, the order's rows, the jobs it queued) is recomputed from
        the event, which the ingest stored with its own synchronous commit: the event is
        `received` again and processed again, once. Handlers call nothing outside the
        database (payments.handlers). The acknowledgement keeps the default: a 200 means
        the event is on disk."""
        raw = self._raw()
        if raw is not self.configured:
            with connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit TO off")
            self.configured = raw

    def _raw(self) -> "psycopg.Connection[Any]":
        connection.ensure_connection()
        raw = connection.connection
        assert isinstance(raw, psycopg.Connection)
        return raw

    def wait(self, seconds: float, stop: threading.Event) -> None:
        """Until a notification, `seconds`, or `stop` (looked at twice a second)."""
        raw = self._raw()
        if raw is not self.subscribed:
            with connection.cursor() as cursor:
                cursor.execute(f"LISTEN {CHANNEL}")
            self.subscribed = raw
        deadline = time.monotonic() + seconds
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            # Notifications that came while the worker was busy are yielded first; the
            # ones behind the first are drained with it.
            woken = False
            for _ in raw.notifies(timeout=min(left, STOP_CHECK_SECONDS), stop_after=1):
                woken = True
            if woken:
                return


def stripe_events_worker_run(stop: threading.Event, *, idle_wait: float = IDLE_WAIT_SECONDS) -> int:
    """The worker loop, until `stop` is set; returns how many events it processed."""
    listener = _Listener()
    done = 0
    outage = OUTAGE_WAIT_SECONDS[0]
    while not stop.is_set():
        try:
            listener.configure()
            done += stripe_events_work(stop=stop.is_set)
            if not stop.is_set():
                listener.wait(idle_wait, stop)
            outage = OUTAGE_WAIT_SECONDS[0]
        except Exception as exc:  # noqa: BLE001 - the worker outlives whatever went wrong
            # A lost connection (PostgreSQL restarting; psycopg's own errors come from
            # notifies()) is waited out; anything else (a schema not migrated yet, a bug)
            # is logged with its traceback and retried after the same pause, never a
            # busy loop, never a dead worker. A handler's failure never gets here: it is
            # recorded on its event (payments.inbox._attempt).
            lost = isinstance(exc, (OperationalError, InterfaceError, psycopg.OperationalError,
                                    psycopg.InterfaceError))  # fmt: skip
            log = logger.warning if lost else logger.exception
            log(
                "stripe events worker: "
                + ("database unavailable" if lost else "unexpected error")
                + ", retrying",
                extra={"error": str(exc)[:500], "retry_in_seconds": outage},
            )
            connection.close()
            listener.subscribed = listener.configured = None
            stop.wait(outage)
            outage = min(outage * 2, OUTAGE_WAIT_SECONDS[1])
    return done


def stripe_events_worker_main(stop: threading.Event) -> int:
    """`manage.py stripe_events_worker`: the loop with a start and a stop line."""
    started = time.monotonic()
    logger.info("stripe events worker started")
    done = stripe_events_worker_run(stop)
    logger.info(
        "stripe events worker stopped",
        extra={"events": done, "seconds": round(time.monotonic() - started, 1)},
    )
    connection.close()
    return done
