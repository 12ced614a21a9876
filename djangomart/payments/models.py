"""The webhook inbox (every Stripe event, as received) and the payment facts derived
from it, one row per Stripe object: payments (PaymentIntents), refunds, disputes; and
the record of each reconciliation run."""

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from djangomart.orders.models import Order


class StripeEventStatus(models.TextChoices):
    RECEIVED = "received"  # stored, due for a worker (the inbox is the queue)
    PROCESSED = "processed"
    IGNORED = "ignored"  # a type the engine does not act on
    UNMATCHED = "unmatched"  # no order found for it: needs a human
    FAILED = "failed"  # the last attempt raised; due again at next_attempt_at
    DEAD = "dead"  # out of attempts: needs a human (replay from the admin)


class StripeEventSource(models.TextChoices):
    WEBHOOK = "webhook"  # delivered to POST /webhooks/stripe
    BACKFILL = "backfill"  # read from GET /v1/events by reconciliation (never delivered)


class StripeEvent(models.Model):
    Status = StripeEventStatus
    Source = StripeEventSource
    FINAL = frozenset({Status.PROCESSED, Status.IGNORED, Status.UNMATCHED, Status.DEAD})

    id = models.CharField(max_length=255, primary_key=True)
    type = models.CharField(max_length=128)
    api_version = models.CharField(max_length=64, blank=True)
    livemode = models.BooleanField(default=False)
    stripe_created = models.DateTimeField()
    payload = models.JSONField()
    received_at = models.DateTimeField()
    # Webhook deliveries of this event; 0 for an event only ever read by the backfill.
    delivery_count = models.PositiveIntegerField(default=1)
    source = models.CharField(
        max_length=16, choices=StripeEventSource.choices, default=StripeEventSource.WEBHOOK
    )
    # The ids an event is about. The session and PaymentIntent ids are looked up (the
    # order's admin page, the requeue of waiting events) and indexed (Meta), object_id
    # is not; the admin's search (icontains) uses no btree index anyway, and every
    # index is work for each webhook acknowledgement.
    object_id = models.CharField(max_length=255, blank=True)
    checkout_session_id = models.CharField(max_length=255, blank=True)
    payment_intent_id = models.CharField(max_length=255, blank=True)
    order = models.ForeignKey(
        Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="stripe_events"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_traceback = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # When a `received` or `failed` event is due for a worker: at once for a new one,
    # after a backoff for a failed one (payments.inbox.retry_delay).
    # The database default too, for rows written by raw SQL (an older release's ingest
    # during a deploy).
    next_attempt_at = models.DateTimeField(default=timezone.now, db_default=Now())
    # Set when the retention job emptied `payload` (payments.retention): the row stays as
    # the audit trail, and such an event can never be processed or replayed again.
    payload_pruned_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-received_at"]
        permissions = [("replay_stripeevent", "Can replay Stripe events")]
        indexes = [
            models.Index(fields=["status", "received_at"], name="stripeevent_status_received"),
            models.Index(fields=["type", "received_at"], name="stripeevent_type_received"),
            # Plain btrees: no varchar_pattern_ops twins, nothing here uses LIKE.
            models.Index(fields=["payment_intent_id"], name="stripeevent_payment_intent"),
            models.Index(fields=["checkout_session_id"], name="stripeevent_checkout_session"),
            # The workers' queue: only the events still to be worked on, oldest due first.
            models.Index(
                fields=["next_attempt_at", "stripe_created"],
                name="stripeevent_due",
                condition=Q(status__in=["received", "failed"]),
            ),
            # The retention job's work list: only finished events still holding their
            # payload. Ingest never writes into it (a new event is `received`).
            models.Index(
                fields=["received_at"],
                name="stripeevent_prunable",
                condition=Q(status__in=["processed", "ignored"], payload_pruned_at__isnull=True),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=StripeEventStatus.values), name="stripeevent_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.type} ({self.status})"

    @property
    def data_object(self) -> dict[str, Any]:
        obj = self.payload.get("data", {}).get("object", {})
        return obj if isinstance(obj, dict) else {}


class Payment(models.Model):
    """What DjangoMart knows about one PaymentIntent. Every flag only ever turns on and
    amounts only grow, so applying the same Stripe facts in any order, any number of
    times, gives the same row."""

    stripe_payment_intent_id = models.CharField(max_length=255, unique=True)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="payments")
    currency = models.CharField(max_length=3, blank=True)
    amount_received = models.BigIntegerField(default=0)
    succeeded = models.BooleanField(default=False)
    processing = models.BooleanField(default=False)
    async_failed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.stripe_payment_intent_id


class RefundStatus(models.TextChoices):
    """Stripe's refund statuses. Ours are the same: a refund DjangoMart asked for is
    `pending` from the moment its row is committed until Stripe says otherwise."""

    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class RefundOrigin(models.TextChoices):
    STAFF = "staff"  # a staff member, from the admin or the staff API
    POLICY = "policy"  # LATE_PAYMENT_POLICY refunded money for an ended order
    STRIPE = "stripe"  # made outside DjangoMart (the Dashboard, another integration)


class Refund(models.Model):
    """One Stripe refund, whoever started it. Our UUID is the idempotency key of the
    refund we ask Stripe for (`refund:<id>`); a refund made elsewhere gets a fresh one.
    Amount and currency never change; status only moves forward (payments.refunds)."""

    Status = RefundStatus
    Origin = RefundOrigin
    # Money on its way back or gone: what counts against what may still be refunded.
    HELD = frozenset({RefundStatus.PENDING, RefundStatus.REQUIRES_ACTION, RefundStatus.SUCCEEDED})

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Null until Stripe has answered the request of a refund DjangoMart started.
    stripe_refund_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="refunds")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    stripe_payment_intent_id = models.CharField(max_length=255, db_index=True)
    stripe_charge_id = models.CharField(max_length=255, blank=True)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=64, blank=True)  # Stripe's refund reason
    status = models.CharField(
        max_length=16, choices=RefundStatus.choices, default=RefundStatus.PENDING
    )
    failure_reason = models.CharField(max_length=255, blank=True)
    origin = models.CharField(max_length=16, choices=RefundOrigin.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # The staff's note for the timeline (Stripe's `reason` is one of three codes).
    note = models.TextField(blank=True)
    # The staff API's Idempotency-Key (scoped per order) and a hash of the request body.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001 (unique when set)
    request_fingerprint = models.CharField(max_length=64, blank=True)
    # Submitting to Stripe (a refund DjangoMart started): attempts so far, and when the
    # recovery job should try again if Stripe has not answered yet.
    submit_attempts = models.PositiveIntegerField(default=0)
    submit_next_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    stripe_created = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "pk"]
        permissions = [("retry_refund", "Can retry a failed refund")]
        indexes = [
            models.Index(
                fields=["submit_next_at"],
                name="refund_unsubmitted",
                condition=Q(stripe_refund_id__isnull=True, status="pending"),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=RefundStatus.values), name="refund_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(origin__in=RefundOrigin.values), name="refund_origin_valid"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_gt_0"),
            models.UniqueConstraint(
                fields=["order", "idempotency_key"],
                name="refund_unique_idempotency_key",
                condition=Q(idempotency_key__isnull=False),
            ),
            # The late-payment policy refunds a payment once, however often its money
            # is reported.
            models.UniqueConstraint(
                fields=["payment"],
                name="refund_one_policy_refund_per_payment",
                condition=Q(origin="policy"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.stripe_refund_id or self.id} {self.amount} {self.currency} ({self.status})"


class DisputeStatus(models.TextChoices):
    WARNING_NEEDS_RESPONSE = "warning_needs_response"
    WARNING_UNDER_REVIEW = "warning_under_review"
    WARNING_CLOSED = "warning_closed"
    NEEDS_RESPONSE = "needs_response"
    UNDER_REVIEW = "under_review"
    WON = "won"
    LOST = "lost"
    PREVENTED = "prevented"


class Dispute(models.Model):
    """One Stripe dispute (or inquiry, the `warning_*` statuses), upserted from every
    `charge.dispute.*` event (payments.disputes)."""

    Status = DisputeStatus
    OPEN = frozenset(
        {
            DisputeStatus.WARNING_NEEDS_RESPONSE,
            DisputeStatus.WARNING_UNDER_REVIEW,
            DisputeStatus.NEEDS_RESPONSE,
            DisputeStatus.UNDER_REVIEW,
        }
    )

    stripe_dispute_id = models.CharField(max_length=255, unique=True)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="disputes")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="disputes")
    stripe_payment_intent_id = models.CharField(max_length=255, db_index=True)
    stripe_charge_id = models.CharField(max_length=255, blank=True)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=32, choices=DisputeStatus.choices)
    evidence_due_by = models.DateTimeField(null=True, blank=True)
    is_charge_refundable = models.BooleanField(default=False)
    funds_withdrawn = models.BooleanField(default=False)
    funds_reinstated = models.BooleanField(default=False)
    # Which snapshot of the dispute the row holds: the Stripe event it came from and
    # that event's `created` time, so that an older event never undoes a newer one.
    snapshot_event_id = models.CharField(max_length=255, blank=True)
    snapshot_created = models.DateTimeField(null=True, blank=True)
    stripe_created = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["evidence_due_by", "pk"]
        indexes = [models.Index(fields=["status", "evidence_due_by"], name="dispute_status_due")]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=DisputeStatus.values), name="dispute_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.stripe_dispute_id} {self.amount} {self.currency} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN


class OpenDispute(Dispute):
    """The admin's list of open disputes, soonest evidence deadline first (a proxy)."""

    class Meta:
        proxy = True
        verbose_name = "open dispute"
        verbose_name_plural = "open disputes"


class ReconciliationRunStatus(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # Stripe could not be read (or the run crashed): see errors


class ReconciliationRun(models.Model):
    """One run of `manage.py reconcile` or of its periodic job: the event backfill from
    GET /v1/events and the pending-order checks."""

    Status = ReconciliationRunStatus

    trigger = models.CharField(max_length=16, default="command")  # command | periodic
    status = models.CharField(
        max_length=16,
        choices=ReconciliationRunStatus.choices,
        default=ReconciliationRunStatus.RUNNING,
    )
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The backfill read events created at or after `events_from`; `cursor` is the
    # newest event's `created` it read, where the next run starts (minus an overlap).
    events_from = models.DateTimeField(null=True, blank=True)
    cursor = models.DateTimeField(null=True, blank=True)
    events_seen = models.PositiveIntegerField(default=0)
    events_added = models.PositiveIntegerField(default=0)
    orders_synced = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=ReconciliationRunStatus.values),
                name="reconciliationrun_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"Reconciliation {self.started_at:%Y-%m-%d %H:%M:%S} ({self.status})"


class EventNeedingAttention(StripeEvent):
    """The admin's list of unmatched, failing and dead events (a proxy: same table)."""

    class Meta:
        proxy = True
        verbose_name = "Stripe event needing attention"
        verbose_name_plural = "Stripe events needing attention"
