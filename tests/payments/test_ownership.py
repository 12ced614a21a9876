"""Only our own sessions pay our orders: an event acts on an order only when it is about
that order's own Checkout Session or PaymentIntent, in the configured key's mode, for
our own account. Anything else is stored and shown, never applied."""

import json
from typing import Any

import pytest
from django.db import transaction
from django.test import Client

from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order, OrderEvent
from djangomart.payments.checkout import checkout_session_apply
from djangomart.payments.inbox import stripe_event_process
from djangomart.payments.models import Payment, StripeEvent
from tests.payments.builders import DECLINE, new_intent_id, new_session_id, order_build
from tests.payments.conftest import event_json, intent_object, post_event, session_object
from tests.payments.race_helpers import is_due

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_settings", "demo_catalog")]

LIVE_KEY = "sk_live_" + "x" * 24  # fake: never a real key


def deliver(client: Client, event_type: str, obj: dict[str, Any], **envelope: Any) -> StripeEvent:
    """Posts one signed event (with extra top-level fields) and processes it."""
    event = json.loads(event_json(event_type, obj))
    event.update(envelope)
    payload = json.dumps(event)
    assert post_event(client, payload).status_code == 200
    stripe_event_process(event_id=event["id"])
    return StripeEvent.objects.get(pk=event["id"])


def untouched(order: Order) -> tuple[Any, ...]:
    order.refresh_from_db()
    return (order.status, order.payment_status, order.amount_paid, order.payments.count())


def foreign_session(order: Order, **overrides: Any) -> dict[str, Any]:
    """A paid session carrying the order's real id that the shop never created."""
    return session_object(order, id=new_session_id(), payment_intent=new_intent_id(), **overrides)


# --- Foreign sessions ---


def test_a_session_the_shop_never_created_leaves_the_order_untouched(client: Client) -> None:
    order = order_build()
    event = deliver(client, "checkout.session.completed", foreign_session(order))
    assert event.status == "unmatched"
    assert untouched(order) == ("pending", "unpaid", 0, 0)


def test_a_session_the_shop_never_created_flags_the_order_foreign_session(client: Client) -> None:
    order = order_build()
    session_id = order.stripe_checkout_session_id
    event = deliver(client, "checkout.session.completed", foreign_session(order))
    order.refresh_from_db()
    assert (order.needs_attention, order.attention_reasons) == (True, ["foreign_session"])
    assert order.stripe_checkout_session_id == session_id
    # Linked to the order it claims, so staff see it on the order's page.
    assert event.order_id == order.pk
    assert "not this order's own" in event.last_error
    flag = order.events.get(kind=OrderEvent.Kind.FLAGGED)
    assert flag.stripe_event_id == event.id


@pytest.mark.parametrize(
    "event_type",
    ["checkout.session.async_payment_succeeded", "checkout.session.async_payment_failed"],
)
def test_no_event_of_a_foreign_session_moves_the_order(client: Client, event_type: str) -> None:
    order = order_build()
    event = deliver(client, event_type, foreign_session(order))
    assert event.status == "unmatched"
    assert untouched(order) == ("pending", "unpaid", 0, 0)


def test_an_expired_foreign_session_does_not_expire_the_order(client: Client) -> None:
    order = order_build()
    obj = foreign_session(order, status="expired", payment_status="unpaid")
    deliver(client, "checkout.session.expired", obj)
    assert untouched(order) == ("pending", "unpaid", 0, 0)


# --- The crash window: an order that died before storing its session id ---


def test_an_order_without_a_session_id_is_paid_by_its_own_session(client: Client) -> None:
    order = order_build(with_session=False)
    obj = session_object(order, id=new_session_id())
    event = deliver(client, "checkout.session.completed", obj)
    order.refresh_from_db()
    assert event.status == "processed"
    assert (order.status, order.stripe_checkout_session_id) == ("paid", obj["id"])
    assert not order.needs_attention


@pytest.mark.parametrize(
    "mismatch",
    [
        pytest.param({"client_reference_id": None}, id="no client_reference_id"),
        pytest.param({"client_reference_id": "someone-else"}, id="other client_reference_id"),
        pytest.param({"amount_total": 1}, id="other amount"),
        pytest.param({"currency": "eur"}, id="other currency"),
    ],
)
def test_an_order_without_a_session_id_is_not_paid_by_a_session_that_is_not_its_own(
    client: Client, mismatch: dict[str, Any]
) -> None:
    order = order_build(with_session=False)
    event = deliver(client, "checkout.session.completed", foreign_session(order, **mismatch))
    order.refresh_from_db()
    assert event.status == "unmatched"
    assert (order.status, order.amount_paid, order.stripe_checkout_session_id) == (
        "pending",
        0,
        None,
    )
    assert order.attention_reasons == ["foreign_session"]


# --- Mode and account ---


def test_a_live_event_is_never_applied_with_a_test_key(client: Client) -> None:
    order = order_build()
    event = deliver(client, "checkout.session.completed", session_object(order), livemode=True)
    assert (event.status, event.order_id) == ("unmatched", None)
    assert "live" in event.last_error
    assert untouched(order) == ("pending", "unpaid", 0, 0)
    assert not Order.objects.get(pk=order.pk).needs_attention


def test_a_test_event_is_never_applied_with_a_live_key(client: Client, settings: Any) -> None:
    settings.STRIPE_SECRET_KEY = LIVE_KEY
    order = order_build()
    event = deliver(client, "checkout.session.completed", session_object(order))
    assert event.status == "unmatched"
    assert "test" in event.last_error
    assert untouched(order) == ("pending", "unpaid", 0, 0)


def test_a_live_event_is_applied_with_a_live_key(client: Client, settings: Any) -> None:
    settings.STRIPE_SECRET_KEY = LIVE_KEY
    order = order_build()
    obj = session_object(order, livemode=True)
    event = deliver(client, "checkout.session.completed", obj, livemode=True)
    order.refresh_from_db()
    assert (event.status, order.status) == ("processed", "paid")


def test_an_event_of_a_connected_account_is_never_applied(client: Client) -> None:
    order = order_build()
    event = deliver(
        client, "checkout.session.completed", session_object(order), account="acct_1Connected"
    )
    assert (event.status, event.order_id) == ("unmatched", None)
    assert "acct_1Connected" in event.last_error
    assert untouched(order) == ("pending", "unpaid", 0, 0)


def test_a_payment_intent_event_of_a_connected_account_is_never_applied(client: Client) -> None:
    intent_id = new_intent_id()
    order = order_build(intent_id=intent_id)
    obj = intent_object(order, intent_id)
    event = deliver(client, "payment_intent.succeeded", obj, account="acct_1Connected")
    assert event.status == "unmatched"
    assert untouched(order)[:3] == ("pending", "unpaid", 0)


# --- PaymentIntents ---


def test_a_payment_intent_named_by_the_orders_own_session_pays_it(client: Client) -> None:
    order = order_build()
    intent_id = new_intent_id()
    deliver(
        client,
        "checkout.session.completed",
        session_object(order, payment_intent=intent_id, payment_status="unpaid"),
    )
    event = deliver(client, "payment_intent.succeeded", intent_object(order, intent_id))
    order.refresh_from_db()
    assert (event.status, order.status, order.payment_status) == ("processed", "paid", "paid")


def test_an_unknown_payment_intent_carrying_the_orders_id_does_not_pay_it(client: Client) -> None:
    order = order_build()
    event = deliver(client, "payment_intent.succeeded", intent_object(order, new_intent_id()))
    assert (event.status, event.order_id) == ("unmatched", order.pk)
    assert "waiting" in event.last_error.lower()
    assert untouched(order) == ("pending", "unpaid", 0, 0)
    # A legitimate PaymentIntent may simply be ahead of its session: nothing is flagged.
    assert not Order.objects.get(pk=order.pk).needs_attention


def test_a_payment_intent_that_arrived_before_its_session_is_applied_once_the_session_names_it(
    client: Client,
) -> None:
    order = order_build()
    intent_id = new_intent_id()
    early = deliver(client, "payment_intent.succeeded", intent_object(order, intent_id))
    deliver(client, "checkout.session.completed", session_object(order, payment_intent=intent_id))
    early.refresh_from_db()
    assert (early.status, early.attempts, early.last_error) == ("received", 0, "")
    assert is_due(early.pk)  # due again for the workers
    assert stripe_event_process(event_id=early.pk) == "processed"
    order.refresh_from_db()
    assert (order.status, order.amount_paid, order.needs_attention) == ("paid", order.total, False)
    moves = order.events.filter(kind=OrderEvent.Kind.TRANSITION)
    assert list(moves.values_list("to_status", flat=True)) == ["paid"]


def test_a_declined_attempt_reaches_the_timeline_before_any_session_names_its_intent(
    client: Client,
) -> None:
    order = order_build()
    intent_id = new_intent_id()
    declined = intent_object(
        order, intent_id, status="requires_payment_method", last_payment_error=DECLINE
    )
    early = deliver(client, "payment_intent.payment_failed", declined)
    order.refresh_from_db()
    assert early.status == "processed"
    assert order.events.filter(kind=OrderEvent.Kind.PAYMENT_ATTEMPT_FAILED).count() == 1
    # A note only: the PaymentIntent is not recorded as the order's on its own word.
    assert (order.stripe_payment_intent_id, order.payments.count()) == (None, 0)
    deliver(client, "checkout.session.completed", session_object(order, payment_intent=intent_id))
    order.refresh_from_db()
    assert (order.status, order.stripe_payment_intent_id) == ("paid", intent_id)
    assert order.events.filter(kind=OrderEvent.Kind.PAYMENT_ATTEMPT_FAILED).count() == 1


def test_a_payment_intent_the_orders_session_never_names_stays_unapplied(client: Client) -> None:
    order = order_build()
    stray = deliver(client, "payment_intent.succeeded", intent_object(order, new_intent_id()))
    deliver(client, "checkout.session.completed", session_object(order))
    stray.refresh_from_db()
    assert stray.status == "unmatched"
    order.refresh_from_db()
    assert (order.amount_paid, order.payments.count()) == (order.total, 1)


def test_the_stored_payment_intent_of_another_order_is_applied_to_that_order(
    client: Client,
) -> None:
    intent_id = new_intent_id()
    owner, other = order_build(intent_id=intent_id), order_build()
    deliver(client, "payment_intent.succeeded", intent_object(other, intent_id))
    owner.refresh_from_db()
    assert owner.status == "paid"
    assert untouched(other) == ("pending", "unpaid", 0, 0)


# --- The sync applies the same checks ---


def test_applying_a_session_that_is_not_the_orders_own_changes_nothing_but_the_flag() -> None:
    order = order_build()
    with transaction.atomic():
        locked = orders_lock([order.pk])[order.pk]
        checkout_session_apply(locked, foreign_session(order))
    assert untouched(order) == ("pending", "unpaid", 0, 0)
    assert order.attention_reasons == ["foreign_session"]
    assert not Payment.objects.exists()


# --- A repeated flag writes nothing (section 4) ---


def test_a_sync_that_repeats_a_known_flag_writes_nothing() -> None:
    order = order_build()
    stranger = foreign_session(order)
    for _ in range(3):
        with transaction.atomic():
            locked = orders_lock([order.pk])[order.pk]
            checkout_session_apply(locked, stranger)
    assert order.events.filter(kind=OrderEvent.Kind.FLAGGED).count() == 1
