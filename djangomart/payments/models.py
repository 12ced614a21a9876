"""The webhook inbox (every Stripe event, as received) and the payment facts derived
from it, one row per Stripe object."""

from typing import Any

from django.db import models
from django.db.models import Q

from djangomart.orders.models import Order


class StripeEventStatus(models.TextChoices):
    RECEIVED = "received"  # stored, processing job queued
    PROCESSED = "processed"
    IGNORED = "ignored"  # a type the engine does not act on
    UNMATCHED = "unmatched"  # no order found for it: needs a human
    FAILED = "failed"  # the last attempt raised; it will be retried
    DEAD = "dead"  # out of attempts: needs a human (replay from the admin)


class StripeEvent(models.Model):
    Status = StripeEventStatus
    FINAL = frozenset({Status.PROCESSED, Status.IGNORED, Status.UNMATCHED, Status.DEAD})

    id = models.CharField(max_length=255, primary_key=True)
    type = models.CharField(max_length=128)
    api_version = models.CharField(max_length=64, blank=True)
    livemode = models.BooleanField(default=False)
    stripe_created = models.DateTimeField()
    payload = models.JSONField()
    received_at = models.DateTimeField()
    delivery_count = models.PositiveIntegerField(default=1)
    object_id = models.CharField(max_length=255, blank=True, db_index=True)
    checkout_session_id = models.CharField(max_length=255, blank=True, db_index=True)
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    order = models.ForeignKey(
        Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="stripe_events"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_traceback = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-received_at"]
        permissions = [("replay_stripeevent", "Can replay Stripe events")]
        indexes = [
            models.Index(fields=["status", "received_at"], name="stripeevent_status_received"),
            models.Index(fields=["type", "received_at"], name="stripeevent_type_received"),
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


class EventNeedingAttention(StripeEvent):
    """The admin's list of unmatched, failing and dead events (a proxy: same table)."""

    class Meta:
        proxy = True
        verbose_name = "Stripe event needing attention"
        verbose_name_plural = "Stripe events needing attention"
