"""One late payment, held (LATE_PAYMENT_POLICY=hold), reported by Stripe's two events
about it (checkout.session.completed and payment_intent.succeeded, the same money): the
order needs attention once, for one reason it still has, yet order_flag writes a new
FLAGGED entry per Stripe event and the outbox's cause is that entry's id, so staff get a
"needs attention" email (and each endpoint an order.needs_attention) per event."""

from typing import Any

import pytest
from django.test import Client

from djangomart.notify.emails.models import Notification
from djangomart.notify.models import OutboxEvent
from tests.payments.builders import new_intent_id, order_build
from tests.payments.test_late_payment_policy import (
    expire_here,
    process_received,
    report_intent_event,
    report_session_event,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_settings", "demo_catalog")]


def test_one_held_late_payment_reported_twice_sends_staff_one_attention_email(
    client: Client, settings: Any
) -> None:
    settings.LATE_PAYMENT_POLICY = "hold"
    settings.STAFF_NOTIFY_EMAILS = ["ops@example.com"]
    order = order_build()
    expire_here(client, order)
    intent_id = new_intent_id()
    report_session_event(client, order, intent_id)()
    process_received()
    report_intent_event(client, order, intent_id)()  # the same money, Stripe's other event
    process_received()
    order.refresh_from_db()
    assert order.attention_reasons == ["late_payment"]

    emails = Notification.objects.filter(order=order, kind="staff_needs_attention")
    events = OutboxEvent.objects.filter(order=order, type="order.needs_attention")
    assert (emails.count(), events.count()) == (1, 1)
