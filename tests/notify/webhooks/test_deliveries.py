"""Outbound webhook deliveries inside the test's transaction: which endpoints get an
event, what a request looks like and how it is signed, retries to the end of the
window, resend, cancel, the lost-job sweep and the log's pruning."""

import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import stripe
from django.db import transaction
from django.test import Client
from django.utils import timezone
from procrastinate.contrib.django.models import ProcrastinateJob

from djangomart.core.metrics import OUTBOUND_WEBHOOKS
from djangomart.notify.events import EventType
from djangomart.notify.models import OutboxEvent
from djangomart.notify.services import notify_enqueue
from djangomart.notify.webhooks.models import WebhookAttempt, WebhookDelivery
from djangomart.notify.webhooks.sender import RESPONSE_BODY_LIMIT
from djangomart.notify.webhooks.services import (
    DeliveryNotResendable,
    retry_delay,
    webhook_attempts_prune,
    webhook_deliveries_requeue,
    webhook_delivery_resend,
    webhook_delivery_send,
)
from djangomart.notify.webhooks.signing import body_bytes
from djangomart.orders.models import Order
from tests.notify.webhooks.conftest import documented_verify, endpoint_make
from tests.notify.webhooks.receivers import Receiver
from tests.payments.builders import new_intent_id, order_build
from tests.payments.conftest import session_object
from tests.payments.refund_helpers import send

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_settings", "demo_catalog")]

Start = Callable[..., Receiver]


def paid(client: Client) -> tuple[Order, OutboxEvent]:
    """An order paid through a signed Stripe event and the real inbox; its order.paid."""
    order = order_build()
    session = session_object(order, payment_intent=new_intent_id())
    send(client, "checkout.session.completed", session)
    return order, OutboxEvent.objects.get(order=order, type="order.paid")


def jobs_for(delivery: WebhookDelivery) -> list[ProcrastinateJob]:
    return list(
        ProcrastinateJob.objects.filter(
            task_name="webhook_delivery_send", args__delivery_id=delivery.pk
        ).order_by("id")
    )


def counted(event_type: str, outcome: str) -> float:
    return float(OUTBOUND_WEBHOOKS.labels(type=event_type, outcome=outcome)._value.get())


def test_an_event_is_queued_once_for_each_enabled_endpoint_that_listens_to_its_type(
    client: Client, receiver: Start
) -> None:
    url = receiver().url
    paid_only = endpoint_make(url, "order.paid")
    several = endpoint_make(url, "dispute.opened", "order.paid")
    endpoint_make(url, "refund.succeeded")
    endpoint_make(url, "order.paid", enabled=False)

    order, event = paid(client)

    deliveries = WebhookDelivery.objects.filter(event=event).order_by("endpoint_id")
    assert [d.endpoint_id for d in deliveries] == [paid_only.pk, several.pk]
    assert {(d.status, d.attempts, d.cycle) for d in deliveries} == {("pending", 0, 1)}
    for delivery in deliveries:
        [job] = jobs_for(delivery)
        assert (job.queue_name, job.status) == ("outbound_webhooks", "todo")
    # The same fact seen again (the same Stripe event type for the order) queues nothing.
    send(client, "checkout.session.completed", session_object(order))
    assert WebhookDelivery.objects.count() == 2


def test_an_endpoint_may_ask_for_any_event_type(receiver: Start) -> None:
    endpoint = endpoint_make(receiver().url, "order.expired")
    order = order_build()
    with transaction.atomic():
        event = notify_enqueue(EventType.ORDER_EXPIRED, order)
    assert event is not None
    assert WebhookDelivery.objects.get(event=event).endpoint == endpoint


def test_a_fact_rolled_back_queues_no_delivery_and_no_job(receiver: Start) -> None:
    endpoint_make(receiver().url, "order.canceled")
    order = order_build()

    def fact_that_fails() -> None:
        with transaction.atomic():
            notify_enqueue(EventType.ORDER_CANCELED, order)
            raise RuntimeError("the fact's transaction fails after the outbox wrote its rows")

    with pytest.raises(RuntimeError):
        fact_that_fails()
    assert not WebhookDelivery.objects.exists()
    assert not ProcrastinateJob.objects.filter(task_name="webhook_delivery_send").exists()


def test_the_request_is_the_events_payload_signed_like_stripe(
    client: Client, receiver: Start
) -> None:
    hook = receiver()
    endpoint = endpoint_make(hook.url)
    _, event = paid(client)
    delivery = WebhookDelivery.objects.get(event=event)

    assert webhook_delivery_send(delivery_id=delivery.pk) == "delivered"

    [request] = hook.requests
    assert request.body == body_bytes(event.payload)
    assert json.loads(request.body) == event.payload
    assert set(json.loads(request.body)) == {"id", "type", "created", "data"}
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == "DjangoMart-Webhooks/1.0"
    assert request.headers["DjangoMart-Event-Id"] == str(event.pk)
    assert request.headers["DjangoMart-Event-Type"] == "order.paid"
    header = request.headers["DjangoMart-Signature"]
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert endpoint.secret.startswith("whsec_")
    # Stripe's own verification code accepts it, and so does the documented snippet.
    stripe.WebhookSignature.verify_header(request.body.decode(), header, endpoint.secret, 300)
    verify = documented_verify()
    assert verify(request.body, header, endpoint.secret)
    assert not verify(request.body + b" ", header, endpoint.secret)
    assert not verify(request.body, header, endpoint.secret + "x")
    timestamp = int(header.split(",")[0][2:])
    assert not verify(request.body, header, endpoint.secret, now=timestamp + 301)
    assert not verify(request.body, "v1=" + header.split("v1=")[1], endpoint.secret)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("delivered", 1, None)


def test_a_failed_attempt_is_logged_and_retried_later_with_backoff(
    client: Client, receiver: Start, settings: Any
) -> None:
    settings.OUTBOUND_WEBHOOK_RETRY_BASE = 60
    endpoint_make(receiver(failures=5).url)
    _, event = paid(client)
    delivery = WebhookDelivery.objects.get(event=event)
    before = counted("order.paid", "failed")

    assert webhook_delivery_send(delivery_id=delivery.pk) == "failed"
    # Not due yet: another job (or worker) finds nothing to do.
    assert webhook_delivery_send(delivery_id=delivery.pk) == "skipped"

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.last_error.startswith("HTTP 500: temporarily broken")
    [attempt] = delivery.log.all()
    assert (attempt.cycle, attempt.number, attempt.status_code, attempt.delivered) == (
        1, 1, 500, False,
    )  # fmt: skip
    assert len(attempt.response_body) == RESPONSE_BODY_LIMIT
    assert delivery.next_attempt_at is not None
    wait = delivery.next_attempt_at - attempt.started_at
    assert timedelta(seconds=59) < wait < timedelta(seconds=62)
    _first, retry = jobs_for(delivery)
    assert retry.scheduled_at == delivery.next_attempt_at
    assert counted("order.paid", "failed") == before + 1


def test_the_backoff_doubles_to_six_hours_and_stops_after_three_days() -> None:
    waits = [retry_delay(n).total_seconds() for n in range(1, 12)]
    assert waits[:9] == [60 * 2**n for n in range(9)]
    assert waits[9:] == [6 * 3600, 6 * 3600]
    elapsed, attempts = 0.0, 1
    while elapsed + retry_delay(attempts).total_seconds() <= 3 * 24 * 3600:
        elapsed += retry_delay(attempts).total_seconds()
        attempts += 1
    assert attempts == 20  # docs/webhooks-outbound.md, "Retries"


def test_a_delivery_failing_at_the_end_of_its_window_is_failed_and_counted_dead(
    client: Client, receiver: Start
) -> None:
    endpoint_make(receiver(failures=100).url)
    _, event = paid(client)
    delivery = WebhookDelivery.objects.get(event=event)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        cycle_started_at=timezone.now() - timedelta(days=3) + timedelta(seconds=30)
    )
    before = counted("order.paid", "dead")

    assert webhook_delivery_send(delivery_id=delivery.pk) == "dead"

    delivery.refresh_from_db()
    assert (delivery.status, delivery.next_attempt_at, delivery.attempts) == ("failed", None, 1)
    assert len(jobs_for(delivery)) == 1  # no retry queued
    assert counted("order.paid", "dead") == before + 1


def test_a_timeout_or_a_refused_connection_is_a_failed_attempt(
    client: Client, receiver: Start
) -> None:
    hook = receiver()
    endpoint = endpoint_make(hook.url)
    hook.stop()  # nothing listens there any more
    _, event = paid(client)
    delivery = WebhookDelivery.objects.get(event=event)

    assert webhook_delivery_send(delivery_id=delivery.pk) == "failed"

    attempt = WebhookAttempt.objects.get(delivery=delivery)
    assert attempt.status_code is None
    assert attempt.error.startswith("ConnectionError")
    assert endpoint.deliveries.get().status == "pending"


def test_a_failed_answer_with_nul_bytes_is_logged_without_them(
    client: Client, receiver: Start
) -> None:
    # PostgreSQL's text holds no NUL: the attempt, and the delivery's last_error quoting
    # the answer, are stored without them.
    endpoint_make(receiver(failures=1, failure_answer=b"broken\x00 and\x00 binary").url)
    _, event = paid(client)
    delivery = WebhookDelivery.objects.get(event=event)

    assert webhook_delivery_send(delivery_id=delivery.pk) == "failed"

    delivery.refresh_from_db()
    assert delivery.last_error == "HTTP 500: broken and binary"
    assert delivery.log.get().response_body == "broken and binary"


def test_a_pending_delivery_whose_event_was_pruned_is_failed_and_never_posted(
    client: Client, receiver: Start
) -> None:
    hook = receiver(failures=1)
    endpoint_make(hook.url)
    _, event = paid(client)
    delivery = WebhookDelivery.objects.get(event=event)
    assert webhook_delivery_send(delivery_id=delivery.pk) == "failed"  # to be retried
    # What a resend racing the retention job would leave (the prune itself skips events
    # with a pending delivery): a pending delivery of an erased payload.
    OutboxEvent.objects.filter(pk=event.pk).update(payload={}, payload_pruned_at=timezone.now())
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    before = counted("order.paid", "dead")

    assert webhook_delivery_send(delivery_id=delivery.pk) == "dead"

    assert len(hook.requests) == 1  # the first attempt only: no `{}` was POSTed
    delivery.refresh_from_db()
    assert (delivery.status, delivery.next_attempt_at, delivery.claim_token) == (
        "failed", None, None,
    )  # fmt: skip
    assert delivery.last_error.startswith("The event's payload was erased by retention")
    assert delivery.log.count() == 1
    assert counted("order.paid", "dead") == before + 1
    with pytest.raises(DeliveryNotResendable, match="erased by retention"):
        webhook_delivery_resend(delivery_id=delivery.pk)


def test_a_disabled_endpoint_gets_no_new_event_and_its_queued_ones_are_canceled(
    client: Client, receiver: Start
) -> None:
    hook = receiver()
    endpoint = endpoint_make(hook.url)
    _, event = paid(client)
    delivery = WebhookDelivery.objects.get(event=event)
    endpoint.enabled = False
    endpoint.save()

    assert webhook_delivery_send(delivery_id=delivery.pk) == "canceled"
    order = order_build()
    with transaction.atomic():
        notify_enqueue(EventType.ORDER_PAID, order)

    assert hook.requests == []
    delivery.refresh_from_db()
    assert delivery.status == "canceled"
    assert WebhookDelivery.objects.count() == 1
    with pytest.raises(DeliveryNotResendable, match="disabled"):
        webhook_delivery_resend(delivery_id=delivery.pk)


def test_resend_is_a_new_cycle_of_the_same_event_and_body(client: Client, receiver: Start) -> None:
    hook = receiver()
    endpoint_make(hook.url)
    _, event = paid(client)
    delivery = WebhookDelivery.objects.get(event=event)
    with pytest.raises(DeliveryNotResendable, match="still being delivered"):
        webhook_delivery_resend(delivery_id=delivery.pk)
    assert webhook_delivery_send(delivery_id=delivery.pk) == "delivered"

    resent = webhook_delivery_resend(delivery_id=delivery.pk)
    assert (resent.status, resent.cycle, resent.attempts, resent.delivered_at) == (
        "pending", 2, 0, None,
    )  # fmt: skip
    assert len(jobs_for(delivery)) == 2
    assert webhook_delivery_send(delivery_id=delivery.pk) == "delivered"

    first, second = hook.requests
    assert first.body == second.body == body_bytes(event.payload)
    assert first.headers["DjangoMart-Event-Id"] == second.headers["DjangoMart-Event-Id"]
    log = list(delivery.log.values_list("cycle", "number", "delivered"))
    assert log == [(1, 1, True), (2, 1, True)]


def test_a_delivery_whose_job_was_lost_is_queued_again_once(
    client: Client, receiver: Start
) -> None:
    endpoint_make(receiver().url)
    _, event = paid(client)
    delivery = WebhookDelivery.objects.get(event=event)
    # As a worker killed mid-attempt leaves it: pending, its job gone, its claim expired.
    ProcrastinateJob.objects.filter(task_name="webhook_delivery_send").update(status="failed")
    past = timezone.now() - timedelta(minutes=10)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=past, claimed_until=past)

    assert webhook_deliveries_requeue(overdue=timedelta(minutes=5)) == 1
    assert webhook_deliveries_requeue(overdue=timedelta(minutes=5)) == 0  # its job is queued
    assert [j.status for j in jobs_for(delivery)] == ["failed", "todo"]
    assert webhook_delivery_send(delivery_id=delivery.pk) == "delivered"


def test_a_delivery_claimed_by_a_worker_is_not_sent_by_another(
    client: Client, receiver: Start
) -> None:
    hook = receiver()
    endpoint_make(hook.url)
    _, event = paid(client)
    delivery = WebhookDelivery.objects.get(event=event)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        claimed_until=timezone.now() + timedelta(minutes=1)
    )
    ProcrastinateJob.objects.filter(task_name="webhook_delivery_send").update(status="failed")
    assert webhook_delivery_send(delivery_id=delivery.pk) == "skipped"
    assert webhook_deliveries_requeue(overdue=timedelta(0)) == 0
    assert hook.requests == []


def test_pruning_erases_old_answers_in_bounded_batches_and_keeps_the_rows(
    client: Client, receiver: Start
) -> None:
    endpoint_make(receiver(failures=100).url)
    _, event = paid(client)
    delivery = WebhookDelivery.objects.get(event=event)
    now = timezone.now()
    for days in (40, 35, 31, 1):
        WebhookAttempt.objects.create(
            delivery=delivery, cycle=1, number=days, started_at=now - timedelta(days=days),
            duration_ms=5, status_code=500, delivered=False, response_body="oops",
        )  # fmt: skip
    cutoff = now - timedelta(days=30)

    assert webhook_attempts_prune(older_than=cutoff, batch_size=2) == 2
    assert webhook_attempts_prune(older_than=cutoff, batch_size=2) == 1
    assert webhook_attempts_prune(older_than=cutoff, batch_size=2) == 0

    bodies = dict(delivery.log.values_list("number", "response_body"))
    assert bodies == {40: "", 35: "", 31: "", 1: "oops"}
