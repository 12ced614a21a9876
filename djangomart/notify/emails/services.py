"""Customer and staff emails: queued in the fact's transaction, sent by a worker.

Once per (order, kind, cause): the Notification row's unique constraint. Sending is a
claim committed before the SMTP conversation (queued -> sending, one conditional
UPDATE), then the message, then `sent`. A worker that dies between the SMTP server
accepting the message and that last commit leaves the row `sending`; the sweeper puts
it back in the queue after SENDING_TIMEOUT and it is sent again, with the same
Message-ID. That is the one at-least-once window (docs/emails.md); nothing else sends
an email twice, except a staff member's explicit resend.
"""

import logging
import smtplib
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from djangomart.core.metrics import EMAILS
from djangomart.notify.emails.models import STAFF_KINDS, Notification, NotificationKind
from djangomart.notify.emails.render import Rendered, Unsendable, notification_render
from djangomart.notify.events import EventType
from djangomart.notify.models import OutboxEvent
from djangomart.orders.models import OrderEvent
from djangomart.orders.services import order_note

logger = logging.getLogger(__name__)

Kind = NotificationKind
Status = Notification.Status

KIND_FOR_EVENT: dict[str, NotificationKind] = {
    EventType.ORDER_PAID: Kind.ORDER_CONFIRMATION,
    EventType.SHIPMENT_CREATED: Kind.SHIPPING_NOTICE,
    EventType.REFUND_SUCCEEDED: Kind.REFUND_NOTICE,
    EventType.ORDER_FAILED: Kind.ORDER_UNPAID,
    EventType.ORDER_EXPIRED: Kind.ORDER_UNPAID,
    EventType.ORDER_NEEDS_ATTENTION: Kind.STAFF_NEEDS_ATTENTION,
    EventType.DISPUTE_OPENED: Kind.STAFF_DISPUTE_OPENED,
}

# Attempts of one send, and the wait after each failed one: 1 + 5 + 15 + 40 minutes,
# about an hour from the first attempt to the last.
MAX_ATTEMPTS = 5
RETRY_DELAYS = (60, 300, 900, 2400)
# A claim older than this is a worker that died (an SMTP conversation ends within
# EMAIL_TIMEOUT, 10 s); it must stay well above that, or a slow send would be repeated.
SENDING_TIMEOUT = timedelta(minutes=10)
STALE_ERROR = (
    "The worker stopped while sending (no outcome recorded within 10 minutes); queued "
    "again. If the mail server had accepted it, the recipient gets it twice (same "
    "Message-ID)."
)


def emails_for_event(event: OutboxEvent) -> list[Notification]:
    """Queues the email `event` causes, in its transaction: the Notification row and its
    sending job (which runs after the commit; a rolled-back fact sends nothing). Returns
    the new rows (none for a type that sends no email, or a staff email with
    STAFF_NOTIFY_EMAILS empty)."""
    kind = KIND_FOR_EVENT.get(event.type)
    if kind is None:
        return []
    if kind in STAFF_KINDS and not settings.STAFF_NOTIFY_EMAILS:
        return []
    now = timezone.now()
    try:
        # Savepoint: a repeat must not poison the fact's transaction.
        with transaction.atomic():
            notification = Notification.objects.create(
                order_id=event.order_id,
                event=event,
                kind=kind,
                cause=event.cause,
                queued_at=now,
                next_attempt_at=now,
            )
    except IntegrityError:
        # The same email for another event of this cause (an order both failed and
        # expired cannot happen, but one "ended unpaid" email covers either).
        return []
    _job_defer(notification.pk)
    return [notification]


def _job_defer(notification_id: UUID, *, delay: int = 0) -> None:
    # Imported here: tasks imports this module.
    from djangomart.notify.emails.tasks import notification_send_task

    task = notification_send_task.configure(schedule_in={"seconds": delay}) if delay else None
    (task or notification_send_task).defer(notification_id=str(notification_id))


def notification_send(*, notification_id: UUID) -> str:
    """Sends one queued notification; returns its status afterwards. Does nothing for a
    notification that is not `queued` (sent, failed, or claimed by another worker).

    Must not run inside a transaction: the claim is committed before the mail server is
    spoken to, so that a second worker never sends it too."""
    if connection.in_atomic_block:
        raise RuntimeError("notification_send must run outside a transaction (autocommit).")
    claimed = Notification.objects.filter(pk=notification_id, status=Status.QUEUED).update(
        status=Status.SENDING, attempts=F("attempts") + 1, claimed_at=timezone.now()
    )
    notification = Notification.objects.select_related("event").filter(pk=notification_id).first()
    if notification is None:
        return "missing"  # a job outliving its row (a restored or flushed database)
    if not claimed:
        return str(notification.status)
    try:
        rendered = notification_render(notification)
    except Unsendable as exc:
        return _give_up(notification, str(exc))
    except Exception as exc:  # noqa: BLE001 - a template or payload bug: retried, then failed
        return _attempt_failed(notification, None, exc)
    try:
        _message(notification, rendered).send()
    except Exception as exc:  # noqa: BLE001 - recorded on the row and retried with backoff
        return _attempt_failed(notification, rendered, exc)
    # Between the server accepting the message and this commit is the window.
    Notification.objects.filter(
        pk=notification.pk, status=Status.SENDING, attempts=notification.attempts
    ).update(
        status=Status.SENT,
        sent_at=timezone.now(),
        # last_error stays: the history of a send that needed retries.
        **_stored(rendered),
    )
    EMAILS.labels(kind=notification.kind, outcome="sent").inc()
    return str(Status.SENT)


def _message(notification: Notification, rendered: Rendered) -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=rendered.recipients,
        headers={"Message-ID": notification.message_id},
    )
    message.attach_alternative(rendered.html, "text/html")
    return message


def _stored(rendered: Rendered) -> dict[str, str]:
    return {
        "recipient": ", ".join(rendered.recipients),
        "subject": rendered.subject[:998],
        "body_text": rendered.text,
        "body_html": rendered.html,
    }


def _is_permanent(exc: Exception) -> bool:
    # Every recipient refused with a 5xx: the same address will be refused again.
    return isinstance(exc, smtplib.SMTPRecipientsRefused) and all(
        code >= 500 for code, _ in exc.recipients.values()
    )


def _give_up(notification: Notification, error: str, rendered: Rendered | None = None) -> str:
    Notification.objects.filter(
        pk=notification.pk, status=Status.SENDING, attempts=notification.attempts
    ).update(status=Status.FAILED, last_error=error, **(_stored(rendered) if rendered else {}))
    EMAILS.labels(kind=notification.kind, outcome="dead").inc()
    logger.warning(
        "email failed",
        extra={"notification_id": str(notification.pk), "kind": notification.kind, "error": error},
    )
    return str(Status.FAILED)


def _attempt_failed(notification: Notification, rendered: Rendered | None, exc: Exception) -> str:
    error = f"{type(exc).__name__}: {exc}"[:2000]
    attempt = notification.attempts
    if attempt >= MAX_ATTEMPTS or _is_permanent(exc):
        return _give_up(notification, f"Attempt {attempt}: {error}", rendered)
    delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS)) - 1]
    with transaction.atomic():
        requeued = Notification.objects.filter(
            pk=notification.pk, status=Status.SENDING, attempts=attempt
        ).update(
            status=Status.QUEUED,
            last_error=f"Attempt {attempt}: {error}",
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
        )
        if requeued:
            _job_defer(notification.pk, delay=delay)
    EMAILS.labels(kind=notification.kind, outcome="failed").inc()
    logger.info(
        "email attempt failed; retrying",
        extra={
            "notification_id": str(notification.pk),
            "attempt": attempt,
            "delay": delay,
            "error": error,
        },
    )
    return str(Status.QUEUED)


def notifications_requeue_stale(*, now: datetime | None = None) -> int:
    """The sweeper (periodic): a notification `sending` for longer than SENDING_TIMEOUT
    is one whose worker died, maybe after the mail server accepted it; it is queued
    again (or failed, past MAX_ATTEMPTS). A `queued` one overdue by as long lost its job
    (it cannot, short of a database restore; cheap to cover) and gets a new one: the
    claim keeps a second job from sending it twice. Returns how many rows it acted on."""
    now = now or timezone.now()
    cutoff = now - SENDING_TIMEOUT
    with transaction.atomic():
        stale = list(
            Notification.objects.filter(status=Status.SENDING, claimed_at__lt=cutoff)
            .select_for_update(skip_locked=True)
            .values_list("pk", "attempts", "kind")
        )
        exhausted = [pk for pk, attempts, _ in stale if attempts >= MAX_ATTEMPTS]
        retried = [pk for pk, attempts, _ in stale if attempts < MAX_ATTEMPTS]
        Notification.objects.filter(pk__in=exhausted).update(
            status=Status.FAILED, last_error=STALE_ERROR + " No attempts left."
        )
        Notification.objects.filter(pk__in=retried).update(
            status=Status.QUEUED, last_error=STALE_ERROR, next_attempt_at=now
        )
        lost = list(
            Notification.objects.filter(status=Status.QUEUED, next_attempt_at__lt=cutoff)
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        Notification.objects.filter(pk__in=lost).update(next_attempt_at=now)
        for pk in [*retried, *lost]:
            _job_defer(pk)
    for _, attempts, kind in stale:
        EMAILS.labels(kind=kind, outcome="dead" if attempts >= MAX_ATTEMPTS else "failed").inc()
    if stale or lost:
        logger.warning(
            "emails requeued",
            extra={"stale": len(retried), "exhausted": len(exhausted), "lost_jobs": len(lost)},
        )
    return len(stale) + len(lost)


class NotificationInFlight(Exception):
    """A resend of an email already on its way: refused, nothing changes."""


def notification_resend(*, notification_id: UUID, user: User | None) -> Notification:
    """Staff's explicit resend: the same notification is sent again (a new message, with
    its own Message-ID), however it ended; recorded on the row and the order's timeline.
    Raises NotificationInFlight when it is queued or being sent already."""
    with transaction.atomic():
        notification = Notification.objects.select_for_update().get(pk=notification_id)
        if notification.status in (Status.QUEUED, Status.SENDING):
            raise NotificationInFlight(f"The {notification.get_kind_display()} is already queued.")
        now = timezone.now()
        notification.status = Status.QUEUED
        notification.attempts = 0
        notification.resend_count += 1
        notification.resent_at = now
        notification.resent_by = user
        notification.next_attempt_at = now
        notification.save(
            update_fields=[
                "status",
                "attempts",
                "resend_count",
                "resent_at",
                "resent_by",
                "next_attempt_at",
            ]
        )
        order_note(
            notification.order,
            OrderEvent.Kind.NOTE,
            f"Staff resent the {notification.get_kind_display()} email.",
            staff_user=user,
            notification_id=str(notification.pk),
        )
        _job_defer(notification.pk)
    return notification


def notifications_prune(*, older_than: datetime, batch_size: int) -> int:
    """Retention: erases the recipient and rendered bodies of sent or failed
    notifications queued before `older_than`, at most `batch_size` of them, in one short
    statement that skips rows another transaction holds. The row stays (order, kind,
    status, subject, times, attempts) as the audit trail. Returns the rows erased; call
    again until it returns 0."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    table = Notification._meta.db_table
    with connection.cursor() as cursor:
        # A MATERIALIZED CTE, not `id IN (SELECT ... LIMIT)`: see payments.retention.
        cursor.execute(
            "WITH batch AS MATERIALIZED ("  # noqa: S608 - our table name
            f" SELECT id FROM {table} WHERE status IN (%s, %s) AND queued_at < %s"
            " AND pruned_at IS NULL ORDER BY queued_at LIMIT %s FOR UPDATE SKIP LOCKED)"
            f" UPDATE {table} n SET recipient = '', body_text = '', body_html = '',"
            " pruned_at = %s FROM batch WHERE n.id = batch.id",
            [Status.SENT, Status.FAILED, older_than, batch_size, timezone.now()],
        )
        return int(cursor.rowcount)


def notifications_erase_for_orders(order_ids: list[UUID]) -> int:
    """Account deletion (accounts.deletion): the recipient and bodies of these orders'
    emails already sent or failed are erased now, as retention would later; the rows
    stay. A queued one needs nothing: its recipient is read from the order (erased by
    then) when it is sent. Returns the rows erased."""
    return Notification.objects.filter(
        order_id__in=order_ids, status__in=[Status.SENT, Status.FAILED], pruned_at__isnull=True
    ).update(recipient="", body_text="", body_html="", pruned_at=timezone.now())
