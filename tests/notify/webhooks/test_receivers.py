"""Outbound webhooks against real receivers, with committed data: a real procrastinate
worker retries a receiver that fails twice until it accepts each event once; two
workers never send one delivery at once; a receiver that hangs slows neither checkout
nor the Stripe webhook ack nor event processing."""

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from djangomart.notify.emails.models import Notification
from djangomart.notify.models import OutboxEvent
from djangomart.notify.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from djangomart.notify.webhooks.services import webhook_delivery_resend, webhook_delivery_send
from djangomart.orders.models import Order
from djangomart.payments.inbox import stripe_event_process
from djangomart.payments.retention import outbox_events_prune
from tests.notify.webhooks.conftest import documented_verify, endpoint_make
from tests.notify.webhooks.receivers import HangingReceiver, Receiver
from tests.orders.conftest import checkout_post
from tests.payments.builders import new_intent_id, order_build
from tests.payments.conftest import event_json, post_event, run_jobs, session_object

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("queued_jobs_removed", "stripe_settings"),
]


def paid_event(order: Order) -> str:
    return event_json(
        "checkout.session.completed", session_object(order, payment_intent=new_intent_id())
    )


@pytest.mark.usefixtures("demo_catalog")
def test_a_receiver_failing_twice_then_accepting_gets_each_event_accepted_once(
    client: Client, receiver: Callable[..., Receiver], settings: Any
) -> None:
    settings.OUTBOUND_WEBHOOK_RETRY_BASE = 0  # the retries are due at once
    hook = receiver(failures=2)
    endpoint = endpoint_make(hook.url, "order.paid")
    orders = [order_build(), order_build()]
    for order in orders:
        payload = paid_event(order)
        assert post_event(client, payload).status_code == 200
        assert post_event(client, payload).status_code == 200  # Stripe's duplicate

    run_jobs()  # the event workers, then a real procrastinate worker

    events = OutboxEvent.objects.filter(type="order.paid")
    assert events.count() == 2
    verify = documented_verify()
    for event in events:
        assert hook.accepted(str(event.pk)) == 1
        delivery = WebhookDelivery.objects.get(event=event)
        assert (delivery.status, delivery.attempts) == ("delivered", 3)
        log = list(delivery.log.values_list("number", "status_code", "delivered"))
        assert log == [(1, 500, False), (2, 500, False), (3, 200, True)]
    assert len(hook.requests) == 6
    for request in hook.requests:
        assert verify(request.body, request.headers["DjangoMart-Signature"], endpoint.secret)
    # Every attempt of one event carries the same bytes.
    by_event: dict[str, set[bytes]] = {}
    for request in hook.requests:
        by_event.setdefault(request.headers["DjangoMart-Event-Id"], set()).add(request.body)
    assert [len(bodies) for bodies in by_event.values()] == [1, 1]


@pytest.mark.usefixtures("demo_catalog")
def test_two_workers_sending_one_delivery_at_once_post_it_once(
    receiver: Callable[..., Receiver],
) -> None:
    hook = receiver()
    endpoint_make(hook.url, "order.paid")
    client = Client()
    order = order_build()
    payload = paid_event(order)
    post_event(client, payload)
    stripe_event_process(event_id=json.loads(payload)["id"])
    delivery = WebhookDelivery.objects.get()
    barrier = threading.Barrier(2)

    def send() -> str:
        try:
            barrier.wait()
            return webhook_delivery_send(delivery_id=delivery.pk)
        finally:
            connection.close()  # the thread's own connection

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(send) for _ in range(2)]
    assert sorted(f.result() for f in futures) == ["delivered", "skipped"]
    assert len(hook.requests) == 1


@pytest.mark.usefixtures("demo_catalog")
def test_an_endpoint_deleted_during_an_attempt_takes_its_delivery_and_log_with_it(
    receiver: Callable[..., Receiver],
) -> None:
    def delete_endpoint() -> None:
        try:
            WebhookEndpoint.objects.all().delete()
        finally:
            connection.close()  # the receiver thread's own connection

    endpoint_make(receiver(on_request=delete_endpoint).url, "order.paid")
    client = Client()
    payload = paid_event(order_build())
    post_event(client, payload)
    stripe_event_process(event_id=json.loads(payload)["id"])
    delivery = WebhookDelivery.objects.get()

    assert webhook_delivery_send(delivery_id=delivery.pk) == "skipped"
    assert not WebhookDelivery.objects.exists()
    assert not WebhookAttempt.objects.exists()


@pytest.mark.usefixtures("demo_catalog")
def test_a_resend_racing_the_retention_prune_keeps_the_payload_it_will_send(
    receiver: Callable[..., Receiver],
) -> None:
    hook = receiver()
    endpoint_make(hook.url, "order.paid")
    client = Client()
    payload = paid_event(order_build())
    post_event(client, payload)
    stripe_event_process(event_id=json.loads(payload)["id"])
    delivery = WebhookDelivery.objects.get()
    assert webhook_delivery_send(delivery_id=delivery.pk) == "delivered"
    Notification.objects.update(status="sent")  # nothing else holds the payload
    resent, release = threading.Event(), threading.Event()

    def resend_not_yet_committed() -> None:
        try:
            with transaction.atomic():
                webhook_delivery_resend(delivery_id=delivery.pk)
                resent.set()
                release.wait(10)
        finally:
            connection.close()

    resender = threading.Thread(target=resend_not_yet_committed)
    resender.start()
    try:
        assert resent.wait(10)
        # The prune cannot see the delivery pending yet: the resend's lock on the event
        # is what keeps its payload.
        later = timezone.now() + timedelta(seconds=1)
        assert outbox_events_prune(older_than=later, batch_size=10) == 0
    finally:
        release.set()
        resender.join(10)
    assert outbox_events_prune(older_than=later, batch_size=10) == 0  # pending now

    assert webhook_delivery_send(delivery_id=delivery.pk) == "delivered"
    first, again = hook.requests
    assert again.body == first.body


def test_a_hanging_receiver_slows_neither_checkout_nor_the_webhook_ack_nor_processing(
    goods: None,
    sandbox: Any,
    hanging_receiver: HangingReceiver,
    settings: Any,
) -> None:
    settings.OUTBOUND_WEBHOOK_READ_TIMEOUT = 3.0
    endpoint_make(hanging_receiver.url, "order.paid")
    client = Client()
    first = checkout_post(client)
    assert first.status_code == 201, first.content
    first_order = Order.objects.get(pk=first.json()["order"]["id"])
    payload = paid_event(first_order)
    post_event(client, payload)
    stripe_event_process(event_id=json.loads(payload)["id"])
    delivery = WebhookDelivery.objects.get()

    outcome: list[str] = []

    def deliver() -> None:
        try:
            outcome.append(webhook_delivery_send(delivery_id=delivery.pk))
        finally:
            connection.close()

    sender = threading.Thread(target=deliver)
    sender.start()
    time.sleep(0.3)  # the POST is out, waiting for an answer that never comes
    durations: dict[str, float] = {}
    started = time.monotonic()
    second = checkout_post(client)
    durations["checkout"] = time.monotonic() - started
    assert second.status_code == 201, second.content
    payload = paid_event(Order.objects.get(pk=second.json()["order"]["id"]))
    started = time.monotonic()
    ack = post_event(client, payload)
    durations["ack"] = time.monotonic() - started
    assert ack.status_code == 200
    # Processing the event queues a delivery to the same endpoint in its transaction.
    started = time.monotonic()
    assert stripe_event_process(event_id=json.loads(payload)["id"]) == "processed"
    durations["processing"] = time.monotonic() - started
    assert sender.is_alive(), "the delivery was to be in flight all along"

    sender.join(timeout=10)
    assert outcome == ["failed"]
    assert WebhookDelivery.objects.count() == 2
    attempt = delivery.log.get()
    assert attempt.error.startswith("timeout")
    assert attempt.duration_ms >= 3000
    assert max(durations.values()) < 1.0, durations
