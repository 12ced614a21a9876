"""Outbound webhooks: the shop's other systems (ERP, warehouse, accounting) told about
each outbox event they listen to. docs/webhooks-outbound.md."""

import secrets

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from djangomart.notify.events import EventType
from djangomart.notify.models import OutboxEvent
from djangomart.notify.webhooks.url_policy import endpoint_url_validate

EVENT_TYPE_CHOICES = [(t.value, t.value) for t in EventType]


def secret_generate() -> str:
    """A signing secret in Stripe's `whsec_...` style: 32 random bytes."""
    return "whsec_" + secrets.token_hex(32)


class WebhookEndpoint(models.Model):
    """Where to POST the events of the types it lists, signed with its own secret."""

    url = models.URLField(max_length=2000, validators=[endpoint_url_validate])
    # Shown in the admin so that the shop can copy it into the receiver; never edited
    # (a new endpoint gets a new one).
    secret = models.CharField(max_length=80, default=secret_generate, editable=False)
    event_types = ArrayField(models.CharField(max_length=64, choices=EVENT_TYPE_CHOICES))
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        verbose_name = "webhook endpoint"

    def __str__(self) -> str:
        return self.description or self.url


class WebhookDelivery(models.Model):
    """One event for one endpoint: sent until a 2xx answer, retried with backoff for the
    retry window, then `failed`. A resend starts a new cycle on the same row."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"  # the retry window ended without a 2xx answer
        CANCELED = "canceled"  # the endpoint was disabled before it was delivered

    event = models.ForeignKey(OutboxEvent, on_delete=models.PROTECT, related_name="+")
    # Deleting an endpoint deletes its deliveries and their log: the endpoint is gone,
    # its deliveries can no longer be sent or resent.
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    cycle = models.PositiveIntegerField(default=1)
    attempts = models.PositiveIntegerField(default=0)  # in this cycle
    cycle_started_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # The claim of the worker sending it (webhook_delivery_send): a token and until when.
    claim_token = models.UUIDField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="webhookdelivery_due",
                condition=Q(status="pending"),
            )
        ]
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="webhookdelivery_once"),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "delivered", "failed", "canceled"]),
                name="webhookdelivery_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event.type} to {self.endpoint}"


class WebhookAttempt(models.Model):
    """One POST of a delivery, whatever came of it: the log staff read in the admin."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="log")
    cycle = models.PositiveIntegerField()
    number = models.PositiveIntegerField()  # in its cycle, from 1
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)  # timeout, connection refused, ...
    delivered = models.BooleanField()
    # The answer's first bytes (RESPONSE_BODY_LIMIT); erased by webhook_attempts_prune.
    response_body = models.TextField(blank=True)

    class Meta:
        ordering = ["started_at", "pk"]
        indexes = [
            # What webhook_attempts_prune still has to erase.
            models.Index(
                fields=["started_at"],
                name="webhookattempt_prunable",
                condition=~Q(response_body=""),
            )
        ]

    def __str__(self) -> str:
        return f"attempt {self.cycle}.{self.number} of delivery {self.delivery_id}"
