"""Background jobs (procrastinate). Tasks take ids and call services."""

import logging
from uuid import UUID

from procrastinate import RetryStrategy
from procrastinate.contrib.django import app

from djangomart.payments import backfill, inbox, reconcile, refund_requests, refunds, retention
from djangomart.payments.models import StripeEvent

logger = logging.getLogger(__name__)


# Stripe events are not jobs: the inbox is their queue (payments.inbox_worker). This task
# stays so that a job an older version queued for an event still runs; it finds the
# event processed, or processes it once under the event's claim. A failure is recorded
# on the event with its backoff, and the event workers retry it: the job itself does
# not, or the event would be attempted on two schedules.
@app.task(name="stripe_event_process", queue="stripe_events", pass_context=False)
def stripe_event_process_task(event_id: str) -> str:
    try:
        return inbox.stripe_event_process(event_id=event_id)
    except Exception:  # noqa: BLE001 - recorded on the event (inbox._attempt)
        return str(StripeEvent.objects.get(pk=event_id).status)


# No longer periodic, and nothing left to do (the inbox is the queue: no event can lose
# its job); kept for one release so that a tick an older version queued runs cleanly.
@app.task(name="stripe_events_sweep", queue="stripe_events", queueing_lock="stripe_events_sweep")
def stripe_events_sweep_task(timestamp: int) -> int:
    return 0


# The event backfill and the pending-order checks, as `manage.py reconcile` runs them,
# every five minutes: the pending-order checks ran on their own every five minutes
# before the backfill existed, and keep that pace inside the run.
@app.periodic(cron="*/5 * * * *")
@app.task(name="reconcile", queue="reconcile", queueing_lock="reconcile")
def reconcile_task(timestamp: int) -> int | None:
    try:
        run = backfill.reconcile_run(trigger="periodic")
    except backfill.ReconcileBusy:
        logger.info("reconcile: another run is in progress; this one is skipped")
        return None
    return run.pk


# No longer periodic (reconcile_task runs the same checks); kept so that a job queued by
# an older version still runs.
@app.task(name="orders_reconcile_stale", queue="reconcile", queueing_lock="orders_reconcile_stale")
def orders_reconcile_stale_task(timestamp: int) -> int:
    return reconcile.orders_reconcile_stale()


@app.task(
    name="refund_submit",
    queue="refunds",
    # refund_submit handles Stripe's outages itself (the refund waits for the periodic
    # job below); these retries are for the rest (the database, a crash).
    retry=RetryStrategy(max_attempts=5, exponential_wait=2),
    pass_context=False,
)
def refund_submit_task(refund_id: str) -> str:
    return str(refund_requests.refund_submit(UUID(refund_id)).status)


@app.periodic(cron="* * * * *")
@app.task(name="refunds_submit_due", queue="refunds", queueing_lock="refunds_submit_due")
def refunds_submit_due_task(timestamp: int) -> int:
    return refund_requests.refunds_submit_due()


@app.task(
    name="refunds_sync",
    queue="stripe_events",
    # Stripe unreachable: try again, for about an hour (2 s, 4 s, ... 2048 s).
    retry=RetryStrategy(max_attempts=12, exponential_wait=2),
    pass_context=False,
)
def refunds_sync_task(order_id: str, payment_intent_id: str) -> int:
    return refunds.refunds_sync(order_id=UUID(order_id), payment_intent_id=payment_intent_id)


# Daily, at a quiet hour; a run stops after its time budget and the next one goes on.
@app.periodic(cron="41 4 * * *")
@app.task(name="retention_prune", queue="reconcile", queueing_lock="retention_prune")
def retention_prune_task(timestamp: int) -> dict[str, int]:
    return retention.retention_run().pruned
