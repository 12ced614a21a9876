"""The outbound_webhooks queue's jobs, worked by its own procrastinate worker
(devtools/run.py, docs/deployment.md): a receiver that hangs holds one of that worker's
slots, never a job of the other queues, a web request or the Stripe event workers."""

from datetime import timedelta

from procrastinate.contrib.django import app

from djangomart.notify.webhooks import services

QUEUE = "outbound_webhooks"


# No procrastinate retry: the delivery keeps its own schedule (services.retry_delay), on
# the row, and the next attempt is a new job deferred when this one is recorded.
@app.task(name="webhook_delivery_send", queue=QUEUE, pass_context=False)
def webhook_delivery_send_task(delivery_id: int) -> str:
    return services.webhook_delivery_send(delivery_id=delivery_id)


# A delivery whose job was lost (its worker killed mid-attempt) is sent again.
@app.periodic(cron="*/5 * * * *")
@app.task(
    name="webhook_deliveries_requeue", queue=QUEUE, queueing_lock="webhook_deliveries_requeue"
)
def webhook_deliveries_requeue_task(timestamp: int) -> int:
    return services.webhook_deliveries_requeue(overdue=timedelta(minutes=5))
