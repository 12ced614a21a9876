"""Background jobs (procrastinate). Tasks take ids and call services."""

from uuid import UUID

from procrastinate import RetryStrategy
from procrastinate.contrib.django import app

from djangomart.payments import inbox, reconcile, refund_requests


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


@app.periodic(cron="*/5 * * * *")
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
