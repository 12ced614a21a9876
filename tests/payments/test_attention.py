"""Money that does not fit its order is never `paid` and never dropped: amount and
currency mismatches, events for no known order and payments after expiry are each
flagged for a human with a stable reason, and show up in the admin's attention lists."""

import json
import uuid
from typing import Any

import pytest
from django.test import Client

from djangomart.orders.models import Order, OrderEvent
from djangomart.payments.inbox import stripe_event_process
from djangomart.payments.models import StripeEvent
from tests.payments.builders import new_intent_id, new_session_id, order_build
from tests.payments.conftest import event_json, intent_object, post_event, session_object

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_settings", "demo_catalog")]


def deliver(client: Client, event_type: str, obj: dict[str, Any]) -> StripeEvent:
    """Posts one signed event to the webhook and processes it as the worker would."""
    payload = event_json(event_type, obj)
    response = post_event(client, payload)
    assert response.status_code == 200, response.content
    event_id = json.loads(payload)["id"]
    stripe_event_process(event_id=event_id)
    return StripeEvent.objects.get(pk=event_id)


def own_intent(order: Order, **overrides: Any) -> dict[str, Any]:
    """A PaymentIntent the order's own session already named (so it is the order's)."""
    intent_id = new_intent_id()
    Order.objects.filter(pk=order.pk).update(stripe_payment_intent_id=intent_id)
    order.stripe_payment_intent_id = intent_id
    return intent_object(order, intent_id, **overrides)


def underpaid(order: Order, event_type: str) -> dict[str, Any]:
    """A success event for `order` that carries 100 less than its total."""
    if event_type == "payment_intent.succeeded":
        return own_intent(order, amount_received=order.total - 100)
    return session_object(order, amount_total=order.total - 100)


SUCCESS_EVENTS = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "payment_intent.succeeded",
]


@pytest.mark.parametrize("event_type", SUCCESS_EVENTS)
def test_a_payment_for_less_than_the_total_is_flagged_amount_mismatch_and_not_paid(
    client: Client, event_type: str
) -> None:
    order = order_build()
    event = deliver(client, event_type, underpaid(order, event_type))
    order.refresh_from_db()
    assert event.status == "processed"
    assert (order.status, order.payment_status) == ("pending", "unpaid")
    assert (order.needs_attention, order.attention_reasons) == (True, ["amount_mismatch"])


def test_an_underpayment_is_recorded_as_money_received_not_dropped(client: Client) -> None:
    order = order_build()
    deliver(client, "checkout.session.completed", session_object(order, amount_total=1234))
    order.refresh_from_db()
    assert order.amount_paid == 1234


def test_a_payment_for_more_than_the_total_is_flagged_amount_mismatch_and_not_paid(
    client: Client,
) -> None:
    order = order_build()
    deliver(
        client, "checkout.session.completed", session_object(order, amount_total=order.total + 1)
    )
    order.refresh_from_db()
    assert order.status == "pending"
    assert (order.needs_attention, order.attention_reasons) == (True, ["amount_mismatch"])


@pytest.mark.parametrize("event_type", SUCCESS_EVENTS)
def test_a_payment_in_another_currency_is_flagged_currency_mismatch_and_not_paid(
    client: Client, event_type: str
) -> None:
    order = order_build()
    obj = (
        own_intent(order, currency="eur")
        if event_type == "payment_intent.succeeded"
        else session_object(order, currency="eur")
    )
    deliver(client, event_type, obj)
    order.refresh_from_db()
    assert (order.status, order.payment_status, order.amount_paid) == ("pending", "unpaid", 0)
    assert (order.needs_attention, order.attention_reasons) == (True, ["currency_mismatch"])


def test_a_flag_is_written_to_the_timeline_with_the_stripe_event_that_caused_it(
    client: Client,
) -> None:
    order = order_build()
    event = deliver(client, "checkout.session.completed", session_object(order, currency="eur"))
    flags = OrderEvent.objects.filter(order=order, kind=OrderEvent.Kind.FLAGGED)
    assert list(flags.values_list("stripe_event_id", "data")) == [
        (event.id, {"reason": "currency_mismatch"})
    ]


def unknown_session(**overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": new_session_id(),
        "object": "checkout.session",
        "amount_total": 4000,
        "currency": "usd",
        "metadata": {"order_id": str(uuid.uuid4())},
        "payment_intent": new_intent_id(),
        "payment_status": "paid",
        "status": "complete",
    }
    obj.update(overrides)
    return obj


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(unknown_session(), id="order id of no order"),
        pytest.param(unknown_session(metadata={"order_id": "not-a-uuid"}), id="malformed order id"),
        pytest.param(unknown_session(metadata={}), id="no metadata, unknown session"),
    ],
)
def test_a_paid_session_for_no_known_order_is_unmatched_and_kept(
    client: Client, obj: dict[str, Any]
) -> None:
    order = order_build()
    event = deliver(client, "checkout.session.completed", obj)
    order.refresh_from_db()
    assert (event.status, event.order_id, event.last_error) == (
        "unmatched",
        None,
        "No order matches this event.",
    )
    assert (order.status, order.amount_paid, order.needs_attention) == ("pending", 0, False)


def test_a_succeeded_payment_intent_for_no_known_order_is_unmatched(client: Client) -> None:
    obj = {
        "id": new_intent_id(),
        "object": "payment_intent",
        "amount_received": 4000,
        "currency": "usd",
        "metadata": {"order_id": str(uuid.uuid4())},
        "status": "succeeded",
    }
    event = deliver(client, "payment_intent.succeeded", obj)
    assert event.status == "unmatched"


@pytest.fixture
def hold_late_payments(settings: Any) -> None:
    """LATE_PAYMENT_POLICY=hold: a late payment only flags its order (the other policies:
    tests/payments/test_late_payment_policy.py)."""
    settings.LATE_PAYMENT_POLICY = "hold"


def expired_then_paid(client: Client) -> Order:
    order = order_build()
    intent_id = new_intent_id()
    deliver(
        client,
        "checkout.session.expired",
        session_object(order, payment_intent=intent_id, status="expired", payment_status="unpaid"),
    )
    deliver(client, "checkout.session.completed", session_object(order, payment_intent=intent_id))
    order.refresh_from_db()
    return order


@pytest.mark.usefixtures("hold_late_payments")
def test_a_payment_after_expiry_under_hold_leaves_the_order_expired(client: Client) -> None:
    order = expired_then_paid(client)
    assert order.status == "expired"


@pytest.mark.usefixtures("hold_late_payments")
def test_a_payment_after_expiry_under_hold_is_flagged_late_payment(client: Client) -> None:
    order = expired_then_paid(client)
    assert (order.needs_attention, order.attention_reasons) == (True, ["late_payment"])


@pytest.mark.usefixtures("hold_late_payments")
def test_a_payment_after_expiry_under_hold_is_recorded_as_money_received(client: Client) -> None:
    order = expired_then_paid(client)
    assert (order.amount_paid, order.payment_status) == (order.total, "paid")
    assert order.payments.get().succeeded


@pytest.mark.usefixtures("hold_late_payments")
def test_flagged_orders_are_listed_as_needing_attention_in_the_admin(
    client: Client, staff_client: Client
) -> None:
    mismatched = order_build()
    deliver(client, "checkout.session.completed", session_object(mismatched, amount_total=1))
    late = expired_then_paid(client)
    fine = order_build()
    deliver(client, "checkout.session.completed", session_object(fine))
    response = staff_client.get("/admin/orders/orderneedingattention/")
    assert response.status_code == 200
    page = response.content.decode()
    assert str(mismatched.id) in page
    assert str(late.id) in page
    assert "late_payment" in page
    assert str(fine.id) not in page


def test_unmatched_events_are_listed_as_needing_attention_in_the_admin(
    client: Client, staff_client: Client
) -> None:
    unmatched = deliver(client, "checkout.session.completed", unknown_session())
    order = order_build()
    processed = deliver(client, "checkout.session.completed", session_object(order))
    response = staff_client.get("/admin/payments/eventneedingattention/")
    assert response.status_code == 200
    page = response.content.decode()
    assert unmatched.id in page
    assert processed.id not in page


def test_an_overpayment_is_not_reported_as_paid(client: Client) -> None:
    order = order_build()
    deliver(
        client, "checkout.session.completed", session_object(order, amount_total=order.total + 1)
    )
    order.refresh_from_db()
    assert (order.payment_status, order.amount_paid) == ("unpaid", order.total + 1)


def test_a_second_successful_payment_for_one_order_is_flagged_duplicate_payment(
    client: Client,
) -> None:
    # Contrived: the order's own session names one PaymentIntent, then another one.
    order = order_build()
    first, second = new_intent_id(), new_intent_id()
    deliver(client, "checkout.session.completed", session_object(order, payment_intent=first))
    deliver(
        client,
        "checkout.session.async_payment_succeeded",
        session_object(order, payment_intent=second),
    )
    order.refresh_from_db()
    assert order.status == "paid"
    assert order.amount_paid == 2 * order.total
    assert order.attention_reasons == ["duplicate_payment"]


def test_the_same_payment_told_by_the_session_and_the_intent_counts_once(client: Client) -> None:
    order = order_build()
    intent_id = new_intent_id()
    deliver(client, "checkout.session.completed", session_object(order, payment_intent=intent_id))
    deliver(client, "payment_intent.succeeded", intent_object(order, intent_id))
    order.refresh_from_db()
    assert (order.status, order.amount_paid, order.needs_attention) == ("paid", order.total, False)


def test_a_paid_session_naming_no_payment_intent_is_flagged_not_paid(client: Client) -> None:
    order = order_build()
    deliver(client, "checkout.session.completed", session_object(order, payment_intent=None))
    order.refresh_from_db()
    assert (order.status, order.attention_reasons) == ("pending", ["payment_without_intent"])


def test_a_payment_intent_of_another_order_is_flagged_and_not_counted(client: Client) -> None:
    first, second = order_build(), order_build()
    intent_id = new_intent_id()
    deliver(client, "checkout.session.completed", session_object(first, payment_intent=intent_id))
    deliver(client, "checkout.session.completed", session_object(second, payment_intent=intent_id))
    second.refresh_from_db()
    assert (second.status, second.amount_paid) == ("pending", 0)
    assert second.attention_reasons == ["payment_intent_conflict"]
