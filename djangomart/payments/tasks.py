"""Background jobs (procrastinate). Tasks take ids and call services."""

import logging

from procrastinate import RetryStrategy
from procrastinate.contrib.django import app

from djangomart.payments import backfill, inbox, reconcile

logger = logging.getLogger(__name__)


@app.task(
    name="stripe_event_process",
    queue="stripe_events",
    # Our own attempt counter decides when an event is dead; the job retries a bit
    # longer than that so that the last failure is always recorded by us.
    retry=RetryStrategy(max_attempts=20, exponential_wait=2),
    pass_context=False,
)
def stripe_event_process_task(event_id: str) -> str:
    return inbox.stripe_event_process(event_id=event_id)


@app.periodic(cron="* * * * *")
@app.task(name="stripe_events_sweep", queue="stripe_events", queueing_lock="stripe_events_sweep")
def stripe_events_sweep_task(timestamp: int) -> int:
    return inbox.stripe_events_sweep()


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
