"""One row per email the outbox decided to send (notify.emails.services)."""

import uuid
from urllib.parse import urlsplit

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class NotificationKind(models.TextChoices):
    ORDER_CONFIRMATION = "order_confirmation", "order confirmation"
    SHIPPING_NOTICE = "shipping_notice", "shipping notice"
    REFUND_NOTICE = "refund_notice", "refund notice"
    # The order ended unpaid: its payment failed or its checkout expired.
    ORDER_UNPAID = "order_unpaid", "payment failed / order expired"
    STAFF_NEEDS_ATTENTION = "staff_needs_attention", "staff: order needs attention"
    STAFF_DISPUTE_OPENED = "staff_dispute_opened", "staff: dispute opened"


STAFF_KINDS = frozenset(
    {NotificationKind.STAFF_NEEDS_ATTENTION, NotificationKind.STAFF_DISPUTE_OPENED}
)


class NotificationStatus(models.TextChoices):
    QUEUED = "queued"
    # Claimed by a worker (committed before the SMTP conversation): see services.
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


def message_domain() -> str:
    """The shop's own domain, for Message-IDs: PUBLIC_URL's host, else FRONTEND_URL's."""
    for url in (settings.PUBLIC_URL, settings.FRONTEND_URL):
        host = urlsplit(url).hostname if url else None
        if host:
            return host
    return "localhost"


class Notification(models.Model):
    """An email, once per (order, kind, cause). The recipient is read when it is sent
    (the order's email as it is then, or STAFF_NOTIFY_EMAILS), and what was sent is kept
    (recipient, subject, bodies) until retention erases the recipient and bodies."""

    Kind = NotificationKind
    Status = NotificationStatus

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey(
        "orders.Order", on_delete=models.PROTECT, related_name="notifications"
    )
    # The fact it tells about: its payload (frozen in the fact's transaction) is what
    # the email is written from, on every attempt and resend.
    event = models.ForeignKey(
        "notify.OutboxEvent", on_delete=models.PROTECT, related_name="notifications"
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    cause = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # Attempts of the current send (since it was queued, or last resent by staff).
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    recipient = models.TextField(blank=True)
    subject = models.CharField(max_length=998, blank=True)
    body_text = models.TextField(blank=True)
    body_html = models.TextField(blank=True)
    queued_at = models.DateTimeField(default=timezone.now)
    # When the current attempt is due (queued) and when a worker claimed it (sending).
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    resend_count = models.PositiveIntegerField(default=0)
    resent_at = models.DateTimeField(null=True, blank=True)
    resent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Retention erased the recipient and bodies (services.notifications_prune).
    pruned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-queued_at", "pk"]
        permissions = [("resend_notification", "Can resend a notification email")]
        indexes = [
            models.Index(fields=["queued_at"], name="notification_queued_at"),
            # The sweeper's scan: only the few rows on their way.
            models.Index(
                fields=["status", "next_attempt_at"],
                name="notification_in_flight",
                condition=Q(status__in=["queued", "sending"]),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["order", "kind", "cause"], name="notification_once_per_cause"
            ),
            models.CheckConstraint(
                condition=Q(status__in=NotificationStatus.values), name="notification_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=NotificationKind.values), name="notification_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for order {self.order_id}"

    def is_for_staff(self) -> bool:
        return self.kind in STAFF_KINDS

    @property
    def message_id(self) -> str:
        """Deterministic: every attempt of one send carries the same Message-ID, so that
        a receiving system can recognise a duplicate (the at-least-once window, see
        docs/emails.md). A staff resend is a new message, and gets its own."""
        resend = f".{self.resend_count}" if self.resend_count else ""
        return f"<notification.{self.id}{resend}@{message_domain()}>"
