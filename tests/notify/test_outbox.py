"""The outbox (notify.services.notify_enqueue): one OutboxEvent per fact, written in the
fact's transaction, whatever repeats upstream; its payload is the order as the API shows
it."""

from typing import Any

import pytest
from django.db import transaction
from django.test import Client

from djangomart.notify.events import EventType
from djangomart.notify.models import OutboxEvent
from djangomart.notify.services import notify_enqueue
from djangomart.orders.models import Order
from tests.payments.builders import new_intent_id, order_build
from tests.payments.conftest import (
    event_json,
    intent_object,
    session_object,
    stripe_settings,  # noqa: F401 (a fixture)
)
from tests.payments.refund_helpers import deliver, refund_object

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_settings", "demo_catalog")]


def facts(order: Order) -> list[tuple[str, str]]:
    return list(order.outbox_events.order_by("created_at").values_list("type", "cause"))


def test_a_paid_order_is_one_fact_whatever_repeats(client: Client) -> None:
    intent_id = new_intent_id()
    order = order_build()
    completed = event_json(
        "checkout.session.completed", session_object(order, payment_intent=intent_id)
    )
    for _ in range(3):  # Stripe's retries of one event
        deliver(client, completed)
    # Another event of the same payment, and a second copy of the session event.
    deliver(client, event_json("payment_intent.succeeded", intent_object(order, intent_id)))
    deliver(
        client,
        event_json("checkout.session.completed", session_object(order, payment_intent=intent_id)),
    )

    assert facts(order) == [("order.paid", "")]
    (event,) = order.outbox_events.all()
    body = event.payload
    assert set(body) == {"id", "type", "created", "data"}
    assert body["id"] == str(event.pk)
    assert body["type"] == "order.paid"
    # The order as the order API shows it, paid.
    shown = client.get(f"/api/v1/orders/{order.pk}", HTTP_X_ORDER_TOKEN=order.access_token)
    assert shown.status_code == 200
    assert body["data"]["order"] == shown.json()


def test_each_refund_is_its_own_fact_and_a_full_refund_also_refunds_the_order(
    client: Client,
) -> None:
    intent_id = new_intent_id()
    order = order_build()
    deliver(
        client,
        event_json("checkout.session.completed", session_object(order, payment_intent=intent_id)),
    )
    first = refund_object(order, intent_id, amount=1000, status="succeeded")
    second = refund_object(order, intent_id, amount=order.total - 1000, status="succeeded")
    for obj in (first, first, second):
        deliver(client, event_json("refund.created", obj))

    types = [t for t, _ in facts(order)]
    assert types.count("refund.succeeded") == 2
    assert types.count("order.refunded") == 1
    refunds = OutboxEvent.objects.filter(order=order, type="refund.succeeded")
    amounts = sorted(e.payload["data"]["refund"]["amount"] for e in refunds)
    assert amounts == [1000, order.total - 1000]


def test_a_fact_rolled_back_leaves_nothing_to_send() -> None:
    order = order_build()

    def fact_that_fails() -> None:
        with transaction.atomic():
            notify_enqueue(EventType.ORDER_CANCELED, order)
            raise RuntimeError("the fact's transaction fails after the outbox write")

    with pytest.raises(RuntimeError):
        fact_that_fails()
    assert facts(order) == []


def test_the_same_type_with_another_cause_is_another_fact() -> None:
    order = order_build()
    first: Any = notify_enqueue(EventType.ORDER_NEEDS_ATTENTION, order, cause="1")
    again = notify_enqueue(EventType.ORDER_NEEDS_ATTENTION, order, cause="1")
    other = notify_enqueue(EventType.ORDER_NEEDS_ATTENTION, order, cause="2")
    assert first is not None
    assert again is None
    assert other is not None
    assert other.pk != first.pk
    assert facts(order) == [("order.needs_attention", "1"), ("order.needs_attention", "2")]
