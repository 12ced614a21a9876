"""Helpers for the ingest, concurrency and crash tests: pending orders built with the ORM,
a transaction held open in another connection (a row lock, an uncommitted insert), and
waits on what PostgreSQL itself reports about other backends (pg_stat_activity)."""

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from django.db import connection, transaction
from django.forms.models import model_to_dict
from django.utils import timezone
from procrastinate.contrib.django.models import ProcrastinateJob

from djangomart.catalog.demo import demo_catalog_seed
from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order
from djangomart.payments.models import StripeEvent
from tests.payments.builders import order_build


def order_pending(
    *, sku: str = "CLASSIC-TEE-M", quantity: int = 2, with_session: bool = True
) -> Order:
    """A pending order as checkout leaves it once its Checkout Session exists, built with
    the ORM so that no Stripe is needed (its stock reserved, as checkout does)."""
    demo_catalog_seed()
    return order_build(sku=sku, quantity=quantity, with_session=with_session)


def order_state(order_id: uuid.UUID) -> dict[str, Any]:
    """Everything about an order that an event could change: its row, its timeline and
    its payments."""
    order = Order.objects.get(pk=order_id)
    row = model_to_dict(order)
    row.pop("id", None)
    row["updated_at"] = order.updated_at
    timeline = list(order.events.order_by("pk").values_list("kind", "stripe_event_id"))
    payments = list(order.payments.order_by("pk").values())
    return {"order": row, "timeline": timeline, "payments": payments}


def is_due(event_id: str) -> bool:
    """Whether `event_id` is work a worker would take now (the inbox is the queue: a row
    is queued once by construction)."""
    event = StripeEvent.objects.get(pk=event_id)
    return event.status in ("received", "failed") and event.next_attempt_at <= timezone.now()


def event_jobs() -> list[ProcrastinateJob]:
    """procrastinate jobs for Stripe events: none is ever queued since the inbox is the
    queue (the task stays for jobs an older version queued)."""
    return list(ProcrastinateJob.objects.filter(task_name="stripe_event_process"))


@contextmanager
def held_transaction(work: Callable[[], object]) -> Iterator[None]:
    """Runs `work` in a transaction of another thread (so another connection) and keeps
    that transaction open, with its locks, until the block ends; then rolls it back."""
    started = threading.Event()
    finish = threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            with transaction.atomic():
                work()
                started.set()
                finish.wait(60)
                transaction.set_rollback(True)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)
        finally:
            started.set()
            connection.close()

    thread = threading.Thread(target=hold, name="held-transaction", daemon=True)
    thread.start()
    try:
        assert started.wait(10), "the held transaction never started"
        if errors:
            raise errors[0]
        yield
    finally:
        finish.set()
        thread.join(10)
    if errors:
        raise errors[0]


def order_row_locked(order_id: uuid.UUID) -> Callable[[], object]:
    """Work for held_transaction: SELECT ... FOR UPDATE on the order, as processing does."""
    return lambda: orders_lock([order_id])


def lock_waiters() -> list[int]:
    """Backends of the test database that are waiting for a lock right now."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            " AND pid <> pg_backend_pid() ORDER BY pid"
        )
        return [row[0] for row in cursor.fetchall()]


def wait_until(predicate: Callable[[], bool], *, timeout: float = 15, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what or predicate}"
        time.sleep(0.02)


def lock_waiters_wait(count: int, *, timeout: float = 15) -> list[int]:
    """Waits until `count` backends wait for a lock; returns their pids."""
    wait_until(lambda: len(lock_waiters()) >= count, timeout=timeout, what=f"{count} lock waiters")
    return lock_waiters()


def backend_exists(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone() is not None


def in_threads(count: int, work: Any) -> list[Any]:
    """Runs work(i) in `count` threads (each its own database connection) released
    together by a barrier; returns each one's result or exception."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        try:
            barrier.wait(10)
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - returned to the test
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def race(calls: list[Callable[[], Any]], *, timeout: float = 120) -> list[Any]:
    """Runs the calls at once, each in its own thread and connection, behind a barrier;
    returns their results in order and re-raises the first thread's error."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        try:
            barrier.wait(10)
            return call()
        finally:
            connection.close()

    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [future.result(timeout) for future in futures]
