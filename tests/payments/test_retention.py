"""Retention (payments.retention): old payloads are emptied in bounded batches, the rows
stay, and nothing else is touched, while ingest goes on."""

import json
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from djangomart.notify.emails.models import Notification
from djangomart.notify.events import EventType
from djangomart.notify.models import OutboxEvent
from djangomart.notify.services import notify_enqueue
from djangomart.payments import retention
from djangomart.payments.inbox import stripe_event_replay
from djangomart.payments.models import StripeEvent
from tests.payments.conftest import event_json, post_event
from tests.payments.race_helpers import held_transaction, order_pending

Status = StripeEvent.Status
OLD = timedelta(days=91)


def _event(*, age: timedelta, status: str = Status.PROCESSED, **fields: Any) -> StripeEvent:
    now = timezone.now()
    event_id = f"evt_test_{uuid.uuid4().hex[:24]}"
    return StripeEvent(
        id=event_id,
        type="checkout.session.completed",
        stripe_created=now - age,
        received_at=now - age,
        payload={"id": event_id, "data": {"object": {"customer_details": {"email": "a@b.c"}}}},
        status=status,
        last_traceback="Traceback ...",
        **fields,
    )


def _events(count: int, **kwargs: Any) -> list[str]:
    rows = StripeEvent.objects.bulk_create([_event(**kwargs) for _ in range(count)])
    return [row.pk for row in rows]


def _cutoff() -> Any:
    return timezone.now() - timedelta(days=90)


@pytest.mark.django_db
def test_only_finished_events_older_than_the_retention_lose_their_payload() -> None:
    old_done = _events(2, age=OLD) + _events(1, age=OLD, status=Status.IGNORED)
    kept = (
        _events(1, age=timedelta(days=89))
        + _events(1, age=OLD, status=Status.RECEIVED)
        + _events(1, age=OLD, status=Status.FAILED)
        + _events(1, age=OLD, status=Status.UNMATCHED)  # waits for a human
        + _events(1, age=OLD, status=Status.DEAD)  # waits for a human's replay
    )

    run = retention.retention_run()

    assert run.pruned["stripe_events"] == 3
    assert run.complete
    for event in StripeEvent.objects.filter(pk__in=old_done):
        assert event.payload == {}
        assert event.last_traceback == ""
        assert event.payload_pruned_at is not None
        # The audit trail stays.
        assert event.type == "checkout.session.completed"
        assert event.delivery_count == 1
    for event in StripeEvent.objects.filter(pk__in=kept):
        assert event.payload["data"]["object"]["customer_details"]["email"] == "a@b.c"
        assert event.payload_pruned_at is None
    # Once pruned, nothing is left to do.
    assert retention.retention_run().pruned["stripe_events"] == 0


@pytest.mark.django_db
def test_each_batch_prunes_at_most_its_size_oldest_first(settings: Any) -> None:
    settings.RETENTION_BATCH_SIZE = 3
    oldest = _events(3, age=timedelta(days=200))
    _events(4, age=OLD)

    assert retention.stripe_events_prune(older_than=_cutoff(), batch_size=3) == 3
    pruned = set(
        StripeEvent.objects.filter(payload_pruned_at__isnull=False).values_list("pk", flat=True)
    )
    assert pruned == set(oldest)

    run = retention.retention_run()
    # 4 left: a full batch, then a short one that ends the walk.
    assert run.pruned["stripe_events"] == 4


@pytest.mark.django_db
def test_a_run_that_runs_out_of_time_stops_and_says_so() -> None:
    _events(2, age=OLD)
    run = retention.retention_run(budget_seconds=0)
    assert not run.complete
    assert run.pruned["stripe_events"] == 0
    assert StripeEvent.objects.filter(payload_pruned_at__isnull=True).count() == 2


@pytest.mark.django_db
def test_a_pruned_event_is_never_replayed() -> None:
    (event_id,) = _events(1, age=OLD, status=Status.IGNORED)
    retention.retention_run()
    assert stripe_event_replay(event_id=event_id) is False
    assert StripeEvent.objects.get(pk=event_id).status == Status.IGNORED


@pytest.mark.django_db
def test_old_outbox_payloads_are_emptied_and_the_facts_stay() -> None:
    order = order_pending()
    old = notify_enqueue(EventType.ORDER_CANCELED, order)
    recent = notify_enqueue(EventType.ORDER_NEEDS_ATTENTION, order, cause="1")
    assert old is not None
    assert recent is not None
    OutboxEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - OLD)

    assert retention.retention_run().pruned["outbox_events"] == 1

    old_row, recent_row = OutboxEvent.objects.get(pk=old.pk), OutboxEvent.objects.get(pk=recent.pk)
    assert old_row.payload == {}
    assert old_row.payload_pruned_at is not None
    assert old_row.type == "order.canceled"
    assert old_row.order_id == order.pk
    assert recent_row.payload["data"]["order"]["id"] == str(order.pk)


@pytest.mark.django_db(transaction=True)
def test_a_row_a_worker_holds_is_skipped_not_waited_for() -> None:
    held, *others = _events(3, age=OLD)

    def lock_one() -> None:
        StripeEvent.objects.select_for_update().get(pk=held)

    with held_transaction(lock_one):
        with connection.cursor() as cursor:
            # Waiting on the held row would fail the statement instead of hanging.
            cursor.execute("SET lock_timeout = '2s'")
        started = time.monotonic()
        assert retention.stripe_events_prune(older_than=_cutoff(), batch_size=10) == 2
        assert time.monotonic() - started < 1.5
    assert StripeEvent.objects.get(pk=held).payload_pruned_at is None
    assert StripeEvent.objects.filter(pk__in=others, payload_pruned_at__isnull=False).count() == 2


@pytest.mark.django_db(transaction=True)
def test_ingest_keeps_running_while_retention_prunes(stripe_settings: Any) -> None:
    stripe_settings.RETENTION_BATCH_SIZE = 100
    _events(2000, age=OLD)
    stop = threading.Event()
    answers: list[tuple[int, float, float]] = []  # status, started, ended
    errors: list[BaseException] = []

    def ingest() -> None:
        client = Client()
        try:
            while not stop.is_set():
                payload = event_json("customer.created", {"id": "cus_test", "object": "customer"})
                started = time.monotonic()
                status = post_event(client, payload).status_code
                answers.append((status, started, time.monotonic()))
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=ingest, daemon=True)
    thread.start()
    try:
        time.sleep(0.2)  # ingest is under way before the first batch
        run_started = time.monotonic()
        run = retention.retention_run()
        run_ended = time.monotonic()
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join(10)

    assert not errors
    assert run.pruned["stripe_events"] == 2000
    assert run.batches >= 20
    assert all(status == 200 for status, _, _ in answers)
    # Deliveries were acknowledged while the batches ran, none stuck behind one (each far
    # from Stripe's timeout).
    during = [a for a in answers if a[1] < run_ended and a[2] > run_started]
    assert len(during) >= 2
    assert max(ended - started for _, started, ended in answers) < 2.0
    received = StripeEvent.objects.filter(type="customer.created")
    assert received.count() == len(answers)
    # New events keep their payloads.
    assert all(json.dumps(event.payload) != "{}" for event in received)


@pytest.mark.django_db
def test_an_outbox_event_keeps_its_payload_while_an_email_of_it_is_on_its_way(
    settings: Any,
) -> None:
    settings.STAFF_NOTIFY_EMAILS = []
    order = order_pending()
    event = notify_enqueue(EventType.ORDER_PAID, order)  # queues the confirmation email
    assert event is not None
    OutboxEvent.objects.filter(pk=event.pk).update(created_at=timezone.now() - OLD)
    assert Notification.objects.filter(event_id=event.pk, status="queued").exists()

    assert retention.retention_run().pruned["outbox_events"] == 0

    Notification.objects.filter(event_id=event.pk).update(status="sent")
    assert retention.retention_run().pruned["outbox_events"] == 1
