"""Retention: what the shop stores about payments and the messages it sent is emptied
once it is old, the rows stay (docs/operations.md, "Retention").

A Stripe event's payload is Stripe's copy of the customer (email, name, address, card
country): kept for STRIPE_EVENT_RETENTION_DAYS, then replaced by {} and
`payload_pruned_at` set; id, type, status, order, delivery count, the related ids and
the last error stay as the audit trail. Only `processed` and `ignored` events are pruned:
an event still waiting for a worker (`received`, `failed`) or for a human (`unmatched`,
`dead`) keeps what it needs to be processed or replayed, and ages out once it is done.
The outbox's payloads (which carry the order's shipping address) and the emails' and
webhook deliveries' logs are pruned the same way after NOTIFY_RETENTION_DAYS; an outbox
event keeps its payload while a delivery or an email of it is still on its way.

Every batch is one statement in its own short transaction that locks at most
RETENTION_BATCH_SIZE rows and skips the rows a worker holds (SKIP LOCKED): the inbox is
never locked for long, and ingest, which only inserts, is never waited for. The batch is
chosen in a MATERIALIZED CTE, never in `WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP
LOCKED)`: PostgreSQL may rescan such a subquery once per outer row, each rescan skips the
rows this statement already updated and locks the next n, and one "batch" then empties
far more than n rows (seen in CI: 6 for a batch of 3).
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

Prune = Callable[..., int]  # (*, older_than: datetime, batch_size: int) -> rows pruned

_STRIPE_EVENTS = """
WITH batch AS MATERIALIZED (
    SELECT id FROM payments_stripeevent
     WHERE status IN ('processed', 'ignored') AND payload_pruned_at IS NULL
       AND received_at < %(older_than)s
     ORDER BY received_at LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
UPDATE payments_stripeevent e SET payload = '{}'::jsonb, last_traceback = '',
       payload_pruned_at = %(now)s
  FROM batch WHERE e.id = batch.id
"""

# An event a delivery is still being retried for (or resent: a new cycle), or an email
# still on its way, keeps its payload: what they send is written from it. It is pruned by
# a later run, once they are done.
_OUTBOX_EVENTS = """
WITH batch AS MATERIALIZED (
    SELECT e.id FROM notify_outboxevent e
     WHERE e.payload_pruned_at IS NULL AND e.created_at < %(older_than)s
       AND NOT EXISTS (SELECT 1 FROM notify_webhooks_webhookdelivery d
                        WHERE d.event_id = e.id AND d.status = 'pending')
       AND NOT EXISTS (SELECT 1 FROM notify_emails_notification n
                        WHERE n.event_id = e.id AND n.status IN ('queued', 'sending'))
     ORDER BY e.created_at LIMIT %(batch)s FOR UPDATE OF e SKIP LOCKED)
UPDATE notify_outboxevent o SET payload = '{}'::jsonb, payload_pruned_at = %(now)s
  FROM batch WHERE o.id = batch.id
"""


def _batch(sql: str, *, older_than: datetime, batch_size: int) -> int:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, {"now": timezone.now(), "older_than": older_than, "batch": batch_size})
        return int(cursor.rowcount)


def stripe_events_prune(*, older_than: datetime, batch_size: int) -> int:
    """Empties the payloads of at most `batch_size` finished Stripe events received
    before `older_than`, oldest first; returns how many."""
    return _batch(_STRIPE_EVENTS, older_than=older_than, batch_size=batch_size)


def outbox_events_prune(*, older_than: datetime, batch_size: int) -> int:
    """Empties the payloads of at most `batch_size` outbox events created before
    `older_than`, oldest first; returns how many."""
    return _batch(_OUTBOX_EVENTS, older_than=older_than, batch_size=batch_size)


@dataclass
class RetentionRun:
    cutoffs: dict[str, datetime] = field(default_factory=dict)
    pruned: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    complete: bool = True  # False when the time budget ran out first


def _targets(now: datetime) -> list[tuple[str, Prune, datetime]]:
    # Imported here: each is a consumer of the outbox, which payments writes to.
    from djangomart.notify.emails.services import notifications_prune
    from djangomart.notify.webhooks.services import webhook_attempts_prune

    stripe_cutoff = now - timedelta(days=settings.STRIPE_EVENT_RETENTION_DAYS)
    notify_cutoff = now - timedelta(days=settings.NOTIFY_RETENTION_DAYS)
    return [
        ("stripe_events", stripe_events_prune, stripe_cutoff),
        ("outbox_events", outbox_events_prune, notify_cutoff),
        ("notifications", notifications_prune, notify_cutoff),
        ("webhook_attempts", webhook_attempts_prune, notify_cutoff),
    ]


def retention_run(*, budget_seconds: float = 300.0, now: datetime | None = None) -> RetentionRun:
    """Prunes everything past its retention, batch after batch, until nothing is left or
    `budget_seconds` have passed (the next daily run goes on from there)."""
    now = now or timezone.now()
    batch_size = settings.RETENTION_BATCH_SIZE
    deadline = timezone.now() + timedelta(seconds=budget_seconds)
    run = RetentionRun()
    for name, prune, cutoff in _targets(now):
        run.cutoffs[name] = cutoff
        run.pruned[name] = 0
        while True:
            if timezone.now() >= deadline:
                run.complete = False
                break
            count = prune(older_than=cutoff, batch_size=batch_size)
            run.batches += 1
            run.pruned[name] += count
            if count < batch_size:
                break
    extra = {"pruned": run.pruned, "batches": run.batches, "complete": run.complete}
    logger.info("retention run", extra=extra)
    return run
