"""One row per fact the outbox was told about (notify.services.notify_enqueue)."""

import uuid

from django.db import models
from django.db.models import Q

from djangomart.notify.events import EventType


class OutboxEvent(models.Model):
    """A fact, once: (type, order, cause) is unique. Its id and `created` are the ones
    outbound webhook receivers see; `payload` is the body they get, frozen in the fact's
    transaction (the order as it was then), so that every retry and resend of it is the
    same bytes."""

    Type = EventType

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=64, choices=[(t.value, t.value) for t in EventType])
    order = models.ForeignKey(
        "orders.Order", on_delete=models.PROTECT, related_name="outbox_events"
    )
    cause = models.CharField(max_length=255, blank=True)
    payload = models.JSONField()
    created_at = models.DateTimeField()
    # Set when the retention job emptied `payload` (payments.retention): it carried the
    # customer's address; a delivery of a pruned event can no longer be resent.
    payload_pruned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["created_at"], name="outboxevent_created")]
        constraints = [
            models.UniqueConstraint(
                fields=["type", "order", "cause"], name="outboxevent_once_per_cause"
            ),
            models.CheckConstraint(
                condition=Q(type__in=[t.value for t in EventType]), name="outboxevent_type_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.order_id} {self.cause}".strip()
