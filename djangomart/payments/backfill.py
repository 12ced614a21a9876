"""Reconciliation runs: the event backfill from GET /v1/events, then the pending-order
checks (payments.reconcile), each run recorded as a ReconciliationRun.

Webhooks can be lost for as long as our endpoint was down or misconfigured; Stripe
lists every event for 30 days. The backfill reads the handled types from where the
last successful run stopped (its `cursor`, the newest event's `created` it read, minus
RECONCILE_EVENTS_OVERLAP_SECONDS: an event may become listable a little after a newer
one), keeps the events the inbox does not have, and stores them through the inbox,
oldest first, exactly as if they had been delivered: the workers then process them
with the same code, in the same order as their delivery would have been.

Runs are serialized by a session-level advisory lock, held for the whole run. It is not
a row lock and no transaction is open while Stripe is read: nothing but another run
ever waits for it, so holding it across the Stripe reads blocks no checkout, webhook or
worker. The cursor only moves forward (the newest of all successful runs' cursors), a
failed run leaves it where it was, and every insert is ON CONFLICT DO NOTHING, so even
a run whose lock vanished (its database session died) could neither skip events nor
store one twice.
"""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connection
from django.db.models import Max
from django.utils import timezone

from djangomart.core.metrics import RECONCILIATION_RUNS
from djangomart.payments import gateway, handlers, inbox, reconcile
from djangomart.payments.models import ReconciliationRun, StripeEvent

logger = logging.getLogger(__name__)

RunStatus = ReconciliationRun.Status

# How far back Stripe lists events.
RETENTION = timedelta(days=30)
# Stripe's limit on `types` in one listing.
MAX_TYPES = 20
_LOCK = "djangomart:reconcile"
LOCK_POLL_SECONDS = 0.5


class ReconcileBusy(Exception):
    """Another reconciliation run holds the lock (it is still running)."""


def handled_types() -> list[str]:
    """The event types the engine acts on: exactly those the backfill lists."""
    types = sorted(handlers.HANDLERS)
    if not 1 <= len(types) <= MAX_TYPES:
        # One listing keeps Stripe's newest-first order across all types, which the
        # oldest-first replay needs; more types would need a merge of several listings.
        raise ImproperlyConfigured(
            f"The backfill lists at most {MAX_TYPES} event types (Stripe's limit); "
            f"handlers.HANDLERS has {len(types)}."
        )
    return types


def cursor_stored() -> datetime | None:
    """Where the last successful run stopped: the newest cursor of any successful run
    (cursors only move forward, so that is the last one's)."""
    succeeded = ReconciliationRun.objects.filter(status=RunStatus.SUCCEEDED)
    cursor: datetime | None = succeeded.aggregate(newest=Max("cursor"))["newest"]
    return cursor


def events_from_default(now: datetime, cursor: datetime | None) -> datetime:
    """The cursor minus the overlap, at most RETENTION back (30 days back with none)."""
    floor = now - RETENTION
    if cursor is None:
        return floor
    return max(cursor - timedelta(seconds=settings.RECONCILE_EVENTS_OVERLAP_SECONDS), floor)


def _created(event: dict[str, Any]) -> datetime | None:
    created = event.get("created")
    if isinstance(created, int) and not isinstance(created, bool) and created >= 0:
        return datetime.fromtimestamp(created, UTC)
    return None


def events_backfill(run: ReconciliationRun, *, since: datetime | None = None) -> None:
    """Reads every handled event from the stored cursor (or from `since`, at most 30 days
    back) and stores those the inbox lacks, oldest first, each with
    its processing job. Fills the run's events_from, events_seen, events_added, cursor
    and errors (events that could not be stored) and saves events_from at once. Raises
    GatewayError if Stripe could not be read: then nothing was stored and run.cursor
    is left None."""
    now = timezone.now()
    previous = cursor_stored()
    default_from = events_from_default(now, previous)
    events_from = default_from if since is None else max(since, now - RETENTION)
    if previous is not None and since is None and default_from > previous:
        run.errors.append({
            "stage": "events",
            "error": (
                f"The last successful run read events up to {previous.isoformat()}, more than "
                f"30 days ago: events until {default_from.isoformat()} are no longer listed "
                "by Stripe and may be missing (see docs: the 30-day limit)."
            ),
        })  # fmt: skip
    run.events_from = events_from
    run.save(update_fields=["events_from"])
    types = handled_types()

    # Newest first, as listed. Only the missing ones are kept: after a long outage the
    # listing is long, but then most of it is missing anyway.
    missing: dict[str, dict[str, Any]] = {}
    newest: datetime | None = None
    starting_after: str | None = None
    while True:
        page = gateway.events_page(
            types=types, created_gte=int(events_from.timestamp()), starting_after=starting_after
        )
        ids = [e["id"] for e in page.events if isinstance(e.get("id"), str)]
        known = set(StripeEvent.objects.filter(pk__in=ids).values_list("pk", flat=True))
        for event in page.events:
            run.events_seen += 1
            created = _created(event)
            if created is not None and (newest is None or created > newest):
                newest = created
            event_id = event.get("id")
            if isinstance(event_id, str) and event_id not in known:
                missing.setdefault(event_id, event)
        if not page.has_more or not ids:
            break
        if ids[-1] == starting_after:
            raise gateway.GatewayUnavailable("GET /v1/events returned the same page twice.")
        starting_after = ids[-1]

    for event in reversed(list(missing.values())):  # oldest first
        try:
            added = inbox.event_store_listed(event)
        except inbox.InvalidEvent as exc:
            run.errors.append({"stage": "events", "event": event.get("id"), "error": str(exc)})
            continue
        run.events_added += added  # not added: a webhook delivery stored it meanwhile

    # A run from a later `since` than the cursor skipped events in between: it leaves
    # the cursor where it was, so that the next run still reads them.
    covered = events_from <= default_from
    candidates = [c for c in (previous, newest if covered else None) if c is not None]
    run.cursor = max(candidates) if candidates else None


@contextmanager
def _runs_serialized(wait_seconds: float) -> Iterator[None]:
    """Holds the reconciliation lock (session level, on this thread's connection) for the
    block; waits up to `wait_seconds` for a run holding it, then ReconcileBusy."""
    if connection.in_atomic_block:
        # The run commits each stored event on its own and calls Stripe: never inside
        # a caller's transaction (which might hold row locks).
        raise RuntimeError("A reconciliation run must not be started inside a transaction.")
    deadline = time.monotonic() + wait_seconds
    while True:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [_LOCK])
            if cursor.fetchone()[0]:
                break
        if time.monotonic() >= deadline:
            raise ReconcileBusy("Another reconciliation run is in progress.")
        time.sleep(LOCK_POLL_SECONDS)
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [_LOCK])
        except DatabaseError:
            # The session is gone, and its lock with it; the run's own error matters.
            logger.exception("reconcile: could not release the run lock")


def _interrupted_runs_close(now: datetime) -> None:
    """Runs left `running` by a process that died: with the lock held, none is running."""
    for stale in ReconciliationRun.objects.filter(status=RunStatus.RUNNING):
        stale.status = RunStatus.FAILED
        stale.finished_at = now
        stale.cursor = None
        stale.errors = [
            *stale.errors,
            {"stage": "run", "error": "Interrupted: the process running it ended first."},
        ]
        stale.save(update_fields=["status", "finished_at", "cursor", "errors"])


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def reconcile_run(
    *, trigger: str, since: datetime | None = None, wait_seconds: float = 0
) -> ReconciliationRun:
    """One reconciliation run, recorded: the event backfill, then the pending-order
    checks (which run even when the events could not be read: they are a separate
    Stripe call each, and must not stop because of a key that may not list events).
    The run is `failed` when either part failed; the cursor then stays where it was.
    Raises ReconcileBusy when another run still holds the lock after `wait_seconds`.
    Counted by outcome (succeeded, failed, skipped: djangomart_reconciliation_runs_total)."""
    try:
        run = _reconcile_run(trigger=trigger, since=since, wait_seconds=wait_seconds)
    except ReconcileBusy:
        RECONCILIATION_RUNS.labels("skipped").inc()
        raise
    except Exception:
        RECONCILIATION_RUNS.labels(RunStatus.FAILED).inc()
        raise
    RECONCILIATION_RUNS.labels(run.status).inc()
    return run


def _reconcile_run(
    *, trigger: str, since: datetime | None, wait_seconds: float
) -> ReconciliationRun:
    with _runs_serialized(wait_seconds):
        now = timezone.now()
        _interrupted_runs_close(now)
        run = ReconciliationRun.objects.create(trigger=trigger)
        try:
            requeued = inbox.stripe_events_ignored_requeue()
        except DatabaseError:
            requeued = 0
            logger.exception("reconcile: ignored events could not be queued again")
        if requeued:
            logger.warning("reconcile: ignored events of a handled type queued again",
                           extra={"events": requeued})  # fmt: skip
        try:
            events_backfill(run, since=since)
        except gateway.GatewayError as exc:
            run.status = RunStatus.FAILED
            run.cursor = None
            run.errors.append({"stage": "events", "error": f"Stripe could not be read: {exc}"})
            logger.error("reconcile: Stripe events could not be read", extra=exc.log_fields())
        except Exception as exc:
            run.status = RunStatus.FAILED
            run.cursor = None
            run.errors.append({"stage": "events", "error": _error(exc)})
            logger.exception("reconcile: the event backfill failed")
        try:
            run.orders_synced = reconcile.orders_reconcile_stale()
        except Exception as exc:
            run.status = RunStatus.FAILED
            run.errors.append({"stage": "orders", "error": _error(exc)})
            logger.exception("reconcile: the pending-order checks failed")
        if run.status == RunStatus.RUNNING:
            run.status = RunStatus.SUCCEEDED
        run.finished_at = timezone.now()
        run.save()
    logger.info(
        "reconcile run finished",
        extra={
            "run_id": run.pk,
            "status": run.status,
            "events_seen": run.events_seen,
            "events_added": run.events_added,
            "orders_synced": run.orders_synced,
            "errors": len(run.errors),
        },
    )
    return run


def run_summary(run: ReconciliationRun) -> str:
    errors = len(run.errors)
    return (
        f"reconcile: {run.events_seen} events seen, {run.events_added} added, "
        f"{run.orders_synced} orders synced, {errors} error{'' if errors == 1 else 's'}"
    )
