"""Outbound webhooks: deliveries queued in the fact's transaction, sent by the
outbound_webhooks worker, retried, resent, their log pruned. docs/webhooks-outbound.md.

A delivery is sent under a claim (a conditional UPDATE taking a token and a lease), so
that two workers, or a retry job and a resend, never POST one delivery at once; the
HTTP request runs with no transaction open and no row locked.
"""

import logging
import time
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from djangomart.core.errors import DomainError
from djangomart.core.metrics import OUTBOUND_WEBHOOKS
from djangomart.notify.models import OutboxEvent
from djangomart.notify.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from djangomart.notify.webhooks.sender import Answer, webhook_post
from djangomart.notify.webhooks.signing import SIGNATURE_HEADER, body_bytes, signature_header

logger = logging.getLogger(__name__)

# How long a claim holds: longer than any attempt (the URL check's DNS lookup, then
# OUTBOUND_WEBHOOK_TOTAL_TIMEOUT, at most 240 s, for the rest). Were an attempt to outlast
# it (a DNS lookup that hangs), another worker may send the delivery again, which the
# receiver's dedupe on the event id absorbs (docs, "Guarantees").
CLAIM_LEASE = timedelta(minutes=5)

PRUNED = (
    "The event's payload was erased by retention (NOTIFY_RETENTION_DAYS) before it was"
    " delivered; it can no longer be sent."
)

Status = WebhookDelivery.Status


class DeliveryNotResendable(DomainError):
    """A resend refused: the delivery is still pending, its endpoint is disabled, or
    its event's payload was pruned (sending it would POST a signed `{}`)."""

    status = 409
    code = "delivery_not_resendable"


def deliveries_for_event(event: OutboxEvent) -> list[int]:
    """Queues one delivery of `event` to each enabled endpoint that listens to its type,
    and its job. Must run in the event's transaction (notify_enqueue): a fact rolled
    back sends nothing. Once per (event, endpoint). Returns the new deliveries' ids."""
    endpoint_ids = list(
        WebhookEndpoint.objects.filter(enabled=True, event_types__contains=[event.type])
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if not endpoint_ids:
        return []
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO notify_webhooks_webhookdelivery (event_id, endpoint_id, status,"
            " cycle, attempts, cycle_started_at, next_attempt_at, last_error, created_at)"
            " SELECT %s, endpoint_id, 'pending', 1, 0, %s, %s, '', %s"
            " FROM unnest(%s::bigint[]) AS endpoint_id"
            " ON CONFLICT (event_id, endpoint_id) DO NOTHING RETURNING id",
            [event.pk, now, now, now, endpoint_ids],
        )
        delivery_ids = [row[0] for row in cursor.fetchall()]
    _jobs_queue(delivery_ids)
    return delivery_ids


def webhook_delivery_send(*, delivery_id: int) -> str:
    """One attempt of a delivery that is due, if this worker can claim it; records it
    and schedules the next one (or gives up at the end of the retry window). Returns
    what happened: delivered, failed, dead, canceled, or skipped (not due, already
    claimed, or no longer pending)."""
    token = uuid.uuid4()
    claimed = (
        WebhookDelivery.objects.filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=Now()),
            pk=delivery_id,
            status=Status.PENDING,
            next_attempt_at__lte=Now(),
        ).update(claim_token=token, claimed_until=Now() + CLAIM_LEASE)
        == 1
    )
    if not claimed:
        return "skipped"
    delivery = WebhookDelivery.objects.select_related("event", "endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        _mine(delivery_id, token).update(
            status=Status.CANCELED,
            next_attempt_at=None,
            last_error="The endpoint was disabled before the event was delivered.",
            claim_token=None,
            claimed_until=None,
        )
        return "canceled"
    if delivery.event.payload_pruned_at is not None:
        # Retention skips events with a pending delivery, but one can turn pending after
        # the check (a resend racing the prune): a signed `{}` under the event's id is
        # garbage to the receiver, so it ends here.
        _mine(delivery_id, token).update(
            status=Status.FAILED,
            next_attempt_at=None,
            last_error=PRUNED,
            claim_token=None,
            claimed_until=None,
        )
        OUTBOUND_WEBHOOKS.labels(type=delivery.event.type, outcome="dead").inc()
        return "dead"
    body = body_bytes(delivery.event.payload)
    started_at = timezone.now()
    answer = webhook_post(
        url=endpoint.url,
        body=body,
        headers={
            SIGNATURE_HEADER: signature_header(body, endpoint.secret, int(time.time())),
            "DjangoMart-Event-Id": str(delivery.event_id),
            "DjangoMart-Event-Type": delivery.event.type,
        },
    )
    try:
        outcome = _attempt_record(delivery, token, started_at, answer)
    except IntegrityError:
        # The endpoint was deleted during the attempt, its deliveries with it.
        if WebhookDelivery.objects.filter(pk=delivery_id).exists():
            raise
        return "skipped"
    if outcome != "lost_claim":
        OUTBOUND_WEBHOOKS.labels(type=delivery.event.type, outcome=outcome).inc()
    return outcome


def retry_delay(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt of a cycle: RETRY_BASE, doubled
    each time, at most RETRY_MAX."""
    base = settings.OUTBOUND_WEBHOOK_RETRY_BASE
    seconds = min(base * 2 ** min(attempts - 1, 40), settings.OUTBOUND_WEBHOOK_RETRY_MAX)
    return timedelta(seconds=seconds)


def webhook_delivery_resend(*, delivery_id: int) -> WebhookDelivery:
    """A new cycle of a delivery that ended (delivered, failed or canceled): the same
    event, so the same body and event id, to the same endpoint, attempted now and
    retried as the first time. Raises DeliveryNotResendable while it is still pending,
    when its endpoint is disabled or when retention erased its event's payload."""
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("endpoint")
            .get(pk=delivery_id)
        )
        if delivery.status == Status.PENDING:
            raise DeliveryNotResendable("It is still being delivered (or retried).")
        if not delivery.endpoint.enabled:
            raise DeliveryNotResendable("Its endpoint is disabled; enable it first.")
        if _event_pruned(delivery.event_id):
            raise DeliveryNotResendable(PRUNED)
        now = timezone.now()
        delivery.status = Status.PENDING
        delivery.cycle += 1
        delivery.attempts = 0
        delivery.cycle_started_at = delivery.next_attempt_at = now
        delivery.delivered_at = None
        delivery.last_error = ""
        delivery.claim_token = delivery.claimed_until = None
        delivery.save()
        _jobs_queue([delivery.pk])
    return delivery


def webhook_deliveries_requeue(*, overdue: timedelta, limit: int = 500) -> int:
    """Queues a job again for each pending delivery due for longer than `overdue` that
    nobody holds and no queued job will send: its job was lost (a worker killed in the
    middle, a job failed on a database error). Returns how many were queued."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT d.id FROM notify_webhooks_webhookdelivery d"
            " WHERE d.status = 'pending' AND d.next_attempt_at < now() - make_interval(secs => %s)"
            " AND (d.claimed_until IS NULL OR d.claimed_until < now())"
            " AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs j"
            "   WHERE j.task_name = 'webhook_delivery_send' AND j.status = 'todo'"
            "   AND j.args->>'delivery_id' = d.id::text)"
            " ORDER BY d.next_attempt_at LIMIT %s",
            [overdue.total_seconds(), limit],
        )
        delivery_ids = [row[0] for row in cursor.fetchall()]
    _jobs_queue(delivery_ids)
    if delivery_ids:
        logger.warning("outbound webhooks: %d deliveries had lost their job", len(delivery_ids))
    return len(delivery_ids)


def webhook_attempts_prune(*, older_than: datetime, batch_size: int) -> int:
    """Erases the stored answers (response_body) of attempts started before
    `older_than`, at most `batch_size` of them, in one short statement that skips rows
    another transaction holds. The attempt rows stay (time, status code, error,
    duration: the audit trail). Returns how many were erased; call again until 0."""
    with connection.cursor() as cursor:
        # A MATERIALIZED CTE, not `id IN (SELECT ... LIMIT)`: see payments.retention.
        cursor.execute(
            "WITH batch AS MATERIALIZED (SELECT id FROM notify_webhooks_webhookattempt"
            "   WHERE started_at < %s AND response_body <> ''"
            "   ORDER BY started_at LIMIT %s FOR UPDATE SKIP LOCKED)"
            " UPDATE notify_webhooks_webhookattempt a SET response_body = ''"
            " FROM batch WHERE a.id = batch.id",
            [older_than, batch_size],
        )
        return int(cursor.rowcount)


def _event_pruned(event_id: uuid.UUID) -> bool:
    # Locked (FOR NO KEY UPDATE) until the resend commits: retention's prune locks the
    # events it erases and skips locked ones, so either it erased this one first (and
    # the lock waited for it: seen here) or it will see the delivery pending and leave
    # the payload.
    pruned_at = (
        OutboxEvent.objects.select_for_update(no_key=True)
        .values_list("payload_pruned_at", flat=True)
        .get(pk=event_id)
    )
    return pruned_at is not None


def _attempt_record(
    delivery: WebhookDelivery, token: uuid.UUID, started_at: datetime, answer: Answer
) -> str:
    number = delivery.attempts + 1
    # PostgreSQL's text holds no NUL: a binary answer (or an error quoting one) would
    # fail the insert and leave an accepted event to be sent again and again.
    answer_body, answer_error = _storable(answer.body), _storable(answer.error)
    now = timezone.now()
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            cycle=delivery.cycle,
            number=number,
            started_at=started_at,
            duration_ms=answer.duration_ms,
            status_code=answer.status_code,
            error=answer_error,
            delivered=answer.delivered,
            response_body=answer_body,
        )
        mine = _mine(delivery.pk, token)
        released = {"claim_token": None, "claimed_until": None, "attempts": F("attempts") + 1}
        if answer.delivered:
            updated = mine.update(
                status=Status.DELIVERED,
                delivered_at=now,
                next_attempt_at=None,
                last_error="",
                **released,
            )
            return "delivered" if updated else "lost_claim"
        error = answer_error or f"HTTP {answer.status_code}: {answer_body[:500]}"
        next_at = now + retry_delay(number)
        window_end = delivery.cycle_started_at + timedelta(
            seconds=settings.OUTBOUND_WEBHOOK_RETRY_WINDOW
        )
        if next_at > window_end:
            updated = mine.update(
                status=Status.FAILED, next_attempt_at=None, last_error=error, **released
            )
            return "dead" if updated else "lost_claim"
        updated = mine.update(next_attempt_at=next_at, last_error=error, **released)
        if not updated:
            return "lost_claim"
        _jobs_queue([delivery.pk], schedule_at=next_at)
        return "failed"


def _storable(text: str) -> str:
    return text.replace("\x00", "")


def _mine(delivery_id: int, token: uuid.UUID) -> QuerySet[WebhookDelivery]:
    return WebhookDelivery.objects.filter(pk=delivery_id, claim_token=token)


def _jobs_queue(delivery_ids: list[int], *, schedule_at: datetime | None = None) -> None:
    """The send jobs, in the caller's transaction (procrastinate's defer joins it)."""
    from djangomart.notify.webhooks.tasks import webhook_delivery_send_task

    task = webhook_delivery_send_task
    for delivery_id in delivery_ids:
        if schedule_at is None:
            task.defer(delivery_id=delivery_id)
        else:
            task.configure(schedule_at=schedule_at).defer(delivery_id=delivery_id)
