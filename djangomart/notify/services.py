"""notify_enqueue: the one door every side effect of a fact goes through.

Called by the services that record facts (orders.transitions, orders.services,
payments.refunds, payments.disputes, fulfillment), inside their transaction and with
the order locked; it never imports them. It writes rows only: the emails and webhook
deliveries it queues are sent by workers after the transaction commits, so a slow
receiver or mail server never slows the fact, and a fact rolled back sends nothing.
"""

import json
import uuid
from typing import Any
from uuid import UUID

from django.db import connection
from django.utils import timezone

from djangomart.notify.events import EventType
from djangomart.notify.models import OutboxEvent
from djangomart.notify.payloads import event_payload, order_public
from djangomart.orders.models import Order


def notify_enqueue(
    event_type: EventType,
    order: Order,
    *,
    cause: str = "",
    objects: dict[str, Any] | None = None,
) -> OutboxEvent | None:
    """Records that `event_type` happened to `order` (for `cause`) and queues what it
    causes: the customer's and staff's emails, a delivery to each webhook endpoint that
    listens to the type. Must run inside the fact's transaction.

    Once per (type, order, cause): returns the new OutboxEvent, or None when the fact
    was already recorded (nothing is queued again). `objects` adds the refund, dispute
    or shipment the event is about to its payload (JSON-ready data)."""
    event_id = uuid.uuid4()
    created = timezone.now()
    payload = event_payload(
        event_id=event_id,
        event_type=event_type.value,
        created=created,
        order_id=order.pk,
        objects=objects,
    )
    # One statement that also tells whether the fact is new: the order is locked by
    # the caller, but the unique constraint, not the lock, is what makes it once.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO notify_outboxevent (id, type, order_id, cause, payload, created_at)"
            " VALUES (%s, %s, %s, %s, %s::jsonb, %s)"
            " ON CONFLICT (type, order_id, cause) DO NOTHING RETURNING id",
            [event_id, event_type.value, order.pk, cause, _json(payload), created],
        )
        if cursor.fetchone() is None:
            return None
    event = OutboxEvent(
        id=event_id,
        type=event_type.value,
        order=order,
        cause=cause,
        payload=payload,
        created_at=created,
    )
    # Imported here: each consumer's models import this app's.
    from djangomart.notify.emails.services import emails_for_event
    from djangomart.notify.webhooks.services import deliveries_for_event

    emails_for_event(event)
    deliveries_for_event(event)
    return event


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))


def outbox_addresses_erase(order_ids: list[UUID]) -> int:
    """Account deletion (accounts.deletion), after the orders' own snapshots were erased:
    the shipping address in these orders' outbox payloads becomes the erased one too, so
    that no retry or resend of an outbound webhook carries it again. The one change ever
    made to a frozen payload: erasure wins over sending the same bytes. Returns the
    events changed."""
    changed = 0
    for order_id in order_ids:
        erased = order_public(order_id)["shipping_address"]
        for event in OutboxEvent.objects.filter(order_id=order_id, payload_pruned_at__isnull=True):
            shown = event.payload.get("data", {}).get("order")
            if isinstance(shown, dict) and shown.get("shipping_address") != erased:
                shown["shipping_address"] = erased
                event.save(update_fields=["payload"])
                changed += 1
    return changed
