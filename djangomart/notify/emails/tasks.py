"""Email jobs (procrastinate), on their own queue so that a slow mail server never
delays payment work: `manage.py procrastinate worker --queues emails` to run them apart."""

from uuid import UUID

from procrastinate.contrib.django import app

from djangomart.notify.emails import services


# No procrastinate retry: the service retries a failed attempt itself (a new job after
# its backoff), so that attempts and the last error are on the Notification row.
@app.task(name="notification_send", queue="emails", pass_context=False)
def notification_send_task(notification_id: str) -> str:
    return services.notification_send(notification_id=UUID(notification_id))


@app.periodic(cron="* * * * *")
@app.task(
    name="notifications_requeue_stale", queue="emails", queueing_lock="notifications_requeue_stale"
)
def notifications_requeue_stale_task(timestamp: int) -> int:
    return services.notifications_requeue_stale()
