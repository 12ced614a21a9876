"""Retention empties an outbox event's payload (notify_outboxevent.payload = {}) with no
regard for what still reads it: the admin's Resend of an old delivery then POSTs a signed
`{}` under the event's id (a receiver that deduplicates on the id, or parses it, is fed
garbage), and a delivery still being retried when the payload is pruned is sent as `{}`.
"""

import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from djangomart.notify.emails.models import Notification
from djangomart.notify.webhooks.models import WebhookDelivery
from djangomart.notify.webhooks.services import (
    DeliveryNotResendable,
    webhook_delivery_resend,
    webhook_delivery_send,
)
from djangomart.payments.retention import outbox_events_prune
from tests.notify.webhooks.conftest import _webhook_settings, endpoint_make, receiver  # noqa: F401
from tests.notify.webhooks.receivers import Receiver
from tests.notify.webhooks.test_deliveries import paid

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_settings", "demo_catalog")]


def test_resend_after_retention_never_posts_an_empty_event(
    client: Client,
    receiver: Callable[..., Receiver],  # noqa: F811
) -> None:
    server = receiver()
    endpoint_make(server.url, "order.paid")
    _order, event = paid(client)
    delivery = WebhookDelivery.objects.get(event=event)
    assert webhook_delivery_send(delivery_id=delivery.pk) == "delivered"
    first = json.loads(server.requests[0].body)
    assert first["type"] == "order.paid"

    # Past NOTIFY_RETENTION_DAYS the payload is pruned, once its emails are sent too.
    Notification.objects.filter(event=event).update(status="sent")
    assert outbox_events_prune(older_than=timezone.now() + timedelta(seconds=1), batch_size=10) >= 1

    try:
        webhook_delivery_resend(delivery_id=delivery.pk)
    except DeliveryNotResendable:
        return  # refusing is a correct answer
    webhook_delivery_send(delivery_id=delivery.pk)
    resent = json.loads(server.requests[-1].body)
    assert resent == first, f"the resend POSTed {resent!r} under event id {event.pk}"


def test_a_delivery_still_being_retried_keeps_its_payload(
    client: Client,
    receiver: Callable[..., Receiver],  # noqa: F811
) -> None:
    server = receiver(failures=1)
    endpoint_make(server.url, "order.paid")
    _order, event = paid(client)
    delivery = WebhookDelivery.objects.get(event=event)
    assert webhook_delivery_send(delivery_id=delivery.pk) == "failed"  # retried later

    outbox_events_prune(older_than=timezone.now() + timedelta(seconds=1), batch_size=10)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert webhook_delivery_send(delivery_id=delivery.pk) == "delivered"
    assert json.loads(server.requests[-1].body) == json.loads(server.requests[0].body)
