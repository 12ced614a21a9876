"""The inbox's processing: one transaction per event, a failure rolled back and recorded,
`dead` after the configured attempts, staff replay, exactly-once on re-processing, and
the inbox as the workers' queue: what is due, when a failed event is due again."""

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from djangomart.orders.models import Order, OrderEvent
from djangomart.payments.inbox import (
    stripe_event_process,
    stripe_event_process_next,
    stripe_event_replay,
    stripe_events_due,
)
from djangomart.payments.models import Payment, StripeEvent
from tests.payments.builders import new_intent_id, new_session_id, order_build
from tests.payments.conftest import (
    event_json,
    intent_object,
    post_event,
    run_jobs,
    session_object,
)

pytestmark = pytest.mark.usefixtures("stripe_settings", "demo_catalog")


def is_due(event_id: str) -> bool:
    """Whether a worker would take `event_id` now."""
    event = StripeEvent.objects.get(pk=event_id)
    return event.status in ("received", "failed") and event.next_attempt_at <= timezone.now()


def store(client: Client, event_type: str, obj: dict[str, Any]) -> str:
    """Posts one signed event to the webhook (which stores it, due for a worker)."""
    payload = event_json(event_type, obj)
    response = post_event(client, payload)
    assert response.status_code == 200, response.content
    return str(json.loads(payload)["id"])


def session_with_bad_amount(order: Order) -> dict[str, Any]:
    """The order's own paid session whose amount is not a number: its handler raises
    ValueError."""
    return session_object(order, amount_total="abc")


def intent_with_bad_amount(order: Order) -> dict[str, Any]:
    """The order's own succeeded PaymentIntent whose amount is not a number: its handler
    raises ValueError."""
    assert order.stripe_payment_intent_id
    return intent_object(order, order.stripe_payment_intent_id, amount_received="abc")


FAILING = [
    pytest.param("checkout.session.completed", session_with_bad_amount, ValueError, id="session"),
    pytest.param("payment_intent.succeeded", intent_with_bad_amount, ValueError, id="intent"),
]


def failing_order() -> Order:
    return order_build(intent_id=new_intent_id())


def failing_event(client: Client) -> tuple[Order, str]:
    order = failing_order()
    return order, store(client, "checkout.session.completed", session_with_bad_amount(order))


def fail(event_id: str, times: int) -> None:
    for _ in range(times):
        with pytest.raises(ValueError, match="invalid literal for int"):
            stripe_event_process(event_id=event_id)


@pytest.mark.django_db
@pytest.mark.parametrize(("event_type", "make_object", "error"), FAILING)
def test_a_handler_that_raises_leaves_the_event_failed_with_its_error_and_traceback(
    client: Client, event_type: str, make_object: Any, error: type[Exception]
) -> None:
    order = failing_order()
    event_id = store(client, event_type, make_object(order))
    with pytest.raises(error):
        stripe_event_process(event_id=event_id)
    event = StripeEvent.objects.get(pk=event_id)
    assert (event.status, event.attempts, event.processed_at, event.order_id) == (
        "failed",
        1,
        None,
        None,
    )
    assert event.last_error.startswith(f"{error.__name__}: ")
    assert event.last_traceback.startswith("Traceback (most recent call last):")
    assert "djangomart/payments/handlers.py" in event.last_traceback


@pytest.mark.django_db
@pytest.mark.parametrize(("event_type", "make_object", "error"), FAILING)
def test_a_handler_that_raises_rolls_back_every_write_it_made(
    client: Client, event_type: str, make_object: Any, error: type[Exception]
) -> None:
    order = failing_order()
    before = Order.objects.values().get(pk=order.pk)
    timeline = list(OrderEvent.objects.filter(order=order).values_list("pk", flat=True))
    event_id = store(client, event_type, make_object(order))
    with pytest.raises(error):
        stripe_event_process(event_id=event_id)
    assert Order.objects.values().get(pk=order.pk) == before
    assert list(OrderEvent.objects.filter(order=order).values_list("pk", flat=True)) == timeline
    assert not Payment.objects.filter(order=order).exists()


@pytest.mark.django_db
def test_an_event_that_keeps_failing_is_dead_after_the_configured_attempts(
    client: Client, settings: Any
) -> None:
    settings.STRIPE_EVENT_MAX_ATTEMPTS = 3
    _, event_id = failing_event(client)
    fail(event_id, times=2)
    assert stripe_event_process(event_id=event_id) == "dead"  # the last one does not raise
    event = StripeEvent.objects.get(pk=event_id)
    assert (event.status, event.attempts) == ("dead", 3)
    assert event.last_error.startswith("ValueError: invalid literal for int()")


@pytest.mark.django_db
def test_a_dead_event_is_not_attempted_again_by_a_late_job(client: Client, settings: Any) -> None:
    settings.STRIPE_EVENT_MAX_ATTEMPTS = 1
    _, event_id = failing_event(client)
    assert stripe_event_process(event_id=event_id) == "dead"
    assert stripe_event_process(event_id=event_id) == "dead"
    assert StripeEvent.objects.get(pk=event_id).attempts == 1


@pytest.mark.django_db
def test_replay_puts_a_dead_event_back_to_received_with_no_attempts_and_no_error(
    client: Client, settings: Any
) -> None:
    settings.STRIPE_EVENT_MAX_ATTEMPTS = 1
    _, event_id = failing_event(client)
    stripe_event_process(event_id=event_id)
    stripe_event_replay(event_id=event_id)
    event = StripeEvent.objects.get(pk=event_id)
    assert (event.status, event.attempts, event.last_error, event.last_traceback) == (
        "received",
        0,
        "",
        "",
    )


@pytest.mark.django_db
def test_replay_makes_a_dead_event_due_at_once(client: Client, settings: Any) -> None:
    settings.STRIPE_EVENT_MAX_ATTEMPTS = 1
    _, event_id = failing_event(client)
    assert stripe_event_process(event_id=event_id) == "dead"
    assert not is_due(event_id)
    assert stripe_event_replay(event_id=event_id) is True
    assert is_due(event_id)
    assert stripe_event_process_next() == (event_id, "dead")  # what the worker takes next


@pytest.mark.django_db
def test_replay_makes_a_failed_event_due_before_its_retry_time(client: Client) -> None:
    _, event_id = failing_event(client)
    fail(event_id, times=1)
    assert not is_due(event_id)  # waiting for its retry time
    stripe_event_replay(event_id=event_id)
    event = StripeEvent.objects.get(pk=event_id)
    assert (event.status, event.attempts, event.last_error) == ("received", 0, "")
    assert is_due(event_id)


@pytest.mark.django_db
def test_a_replayed_event_is_attempted_afresh(client: Client, settings: Any) -> None:
    settings.STRIPE_EVENT_MAX_ATTEMPTS = 2
    _, event_id = failing_event(client)
    fail(event_id, times=1)
    assert stripe_event_process(event_id=event_id) == "dead"
    stripe_event_replay(event_id=event_id)
    fail(event_id, times=1)
    assert StripeEvent.objects.get(pk=event_id).status == "failed"


@pytest.mark.django_db
def test_replay_leaves_a_processed_event_alone(client: Client) -> None:
    order = order_build()
    event_id = store(client, "checkout.session.completed", session_object(order))
    stripe_event_process(event_id=event_id)
    assert stripe_event_replay(event_id=event_id) is False
    event = StripeEvent.objects.get(pk=event_id)
    assert (event.status, event.attempts) == ("processed", 1)
    assert not is_due(event_id)


@pytest.mark.django_db
def test_processing_an_already_processed_event_again_changes_nothing(client: Client) -> None:
    order = order_build()
    event_id = store(client, "checkout.session.completed", session_object(order))
    assert stripe_event_process(event_id=event_id) == "processed"
    event_before = StripeEvent.objects.values().get(pk=event_id)
    order_before = Order.objects.values().get(pk=order.pk)
    timeline = OrderEvent.objects.filter(order=order).count()
    assert stripe_event_process(event_id=event_id) == "processed"
    assert StripeEvent.objects.values().get(pk=event_id) == event_before
    assert Order.objects.values().get(pk=order.pk) == order_before
    assert OrderEvent.objects.filter(order=order).count() == timeline


@pytest.mark.django_db
def test_a_processed_event_is_linked_to_its_order_with_its_processing_time(
    client: Client,
) -> None:
    order = order_build()
    event_id = store(client, "checkout.session.completed", session_object(order))
    before = timezone.now()
    stripe_event_process(event_id=event_id)
    event = StripeEvent.objects.get(pk=event_id)
    assert (event.status, event.attempts, event.order_id) == ("processed", 1, order.pk)
    assert event.processed_at is not None
    assert event.processed_at >= before


@pytest.mark.django_db
def test_an_event_type_the_engine_does_not_act_on_is_stored_as_ignored_and_changes_nothing(
    client: Client,
) -> None:
    order = order_build()
    before = Order.objects.values().get(pk=order.pk)
    event_id = store(client, "customer.created", {"id": "cus_test_1", "object": "customer"})
    assert stripe_event_process(event_id=event_id) == "ignored"
    assert StripeEvent.objects.get(pk=event_id).status == "ignored"
    assert Order.objects.values().get(pk=order.pk) == before


@pytest.mark.django_db(transaction=True)
def test_the_worker_retries_a_failed_event_later_with_backoff(client: Client) -> None:
    _, event_id = failing_event(client)
    run_jobs()
    event = StripeEvent.objects.get(pk=event_id)
    assert (event.status, event.attempts) == ("failed", 1)
    # The first backoff is 2 s from when the failure was recorded; the upper bound only
    # says "seconds, not the hours of a late attempt" and is no speed limit.
    assert timedelta(seconds=2) <= event.next_attempt_at - event.updated_at < timedelta(minutes=1)
    # Not due yet: left alone. (Pushed a minute on: on a loaded machine the 2 s can pass
    # before the next run, which would then rightly take it.)
    StripeEvent.objects.filter(pk=event_id).update(
        next_attempt_at=event.next_attempt_at + timedelta(minutes=1)
    )
    run_jobs()
    assert StripeEvent.objects.get(pk=event_id).attempts == 1
    StripeEvent.objects.filter(pk=event_id).update(next_attempt_at=timezone.now())
    run_jobs()
    event = StripeEvent.objects.get(pk=event_id)
    assert (event.status, event.attempts) == ("failed", 2)
    assert timedelta(seconds=4) <= event.next_attempt_at - event.updated_at < timedelta(minutes=1)


def stored_directly(order: Order, *, age: timedelta) -> StripeEvent:
    """An event stored `age` ago by other means than the webhook (a restored backup, an
    older version's row): a `received` row, nothing else."""
    obj = session_object(order)
    payload = json.loads(event_json("checkout.session.completed", obj))
    return StripeEvent.objects.create(
        id=payload["id"],
        type=payload["type"],
        stripe_created=timezone.now() - age,
        payload=payload,
        received_at=timezone.now() - age,
        object_id=obj["id"],
        checkout_session_id=obj["id"],
        payment_intent_id=obj["payment_intent"],
    )


@pytest.mark.django_db(transaction=True)
def test_any_received_row_is_work_for_the_worker_however_it_was_stored() -> None:
    order = order_build()
    event = stored_directly(order, age=timedelta(minutes=10))
    assert stripe_events_due() == 1
    run_jobs()
    event.refresh_from_db()
    order.refresh_from_db()
    assert (event.status, event.attempts, event.order_id) == ("processed", 1, order.pk)
    assert (order.status, order.payment_status) == ("paid", "paid")
    assert stripe_events_due() == 0


@pytest.mark.django_db
def test_the_worker_takes_the_event_due_first_and_never_a_final_or_future_one() -> None:
    now = timezone.now()
    events = {}
    for name, status, due in [
        ("later", "received", now - timedelta(seconds=1)),
        ("first", "received", now - timedelta(minutes=5)),
        ("retry due", "failed", now - timedelta(minutes=1)),
        ("retry not due", "failed", now + timedelta(minutes=1)),
        *((final, final, now - timedelta(hours=1)) for final in StripeEvent.FINAL),
    ]:
        event = stored_directly(order_build(), age=timedelta(minutes=10))
        StripeEvent.objects.filter(pk=event.pk).update(status=status, next_attempt_at=due)
        events[event.pk] = name
    taken = []
    while (result := stripe_event_process_next()) is not None:
        taken.append(events[result[0]])
    assert taken == ["first", "retry due", "later"]


@pytest.mark.django_db(transaction=True)
def test_a_replayed_unmatched_event_is_processed_by_the_worker_once_its_order_is_found(
    client: Client,
) -> None:
    order = order_build(with_session=False)
    session_id = new_session_id()
    obj = session_object(order, id=session_id, metadata={})  # matchable by session id only
    event_id = store(client, "checkout.session.completed", obj)
    run_jobs()
    assert StripeEvent.objects.get(pk=event_id).status == "unmatched"
    Order.objects.filter(pk=order.pk).update(stripe_checkout_session_id=session_id)
    stripe_event_replay(event_id=event_id)
    run_jobs()
    order.refresh_from_db()
    assert StripeEvent.objects.get(pk=event_id).status == "processed"
    assert order.status == "paid"
