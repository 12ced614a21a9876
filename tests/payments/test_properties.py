"""Property-based: whatever order Stripe delivers a Checkout flow's events in, and however
often it delivers each, the order ends exactly where the model says, and `paid`, once
reached, is never lost on the way.

Each example builds a fresh order, then posts every delivery signed to /webhooks/stripe
and processes the stored event right after it arrives (as a prompt worker would; a
repeated delivery finds its event already processed)."""

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from djangomart.orders.models import Order, OrderEvent
from djangomart.payments.inbox import stripe_event_process
from djangomart.payments.models import StripeEvent
from tests.payments.builders import DECLINE, charge_object, new_intent_id, order_build
from tests.payments.conftest import event_json, intent_object, post_event, session_object

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_settings")]

ObjectBuilder = Callable[[Order, str], dict[str, Any]]

# The Stripe objects of each event type, for an order and its payment intent.
OBJECTS: dict[str, ObjectBuilder] = {
    "payment_intent.created": lambda order, pi: intent_object(
        order, pi, status="requires_payment_method", amount_received=0
    ),
    "charge.succeeded": lambda order, pi: charge_object(order, pi),
    "payment_intent.succeeded": lambda order, pi: intent_object(order, pi),
    "payment_intent.payment_failed": lambda order, pi: intent_object(
        order, pi, status="requires_payment_method", amount_received=0, last_payment_error=DECLINE
    ),
    "payment_intent.canceled": lambda order, pi: intent_object(
        order, pi, status="canceled", amount_received=0, cancellation_reason="abandoned"
    ),
    "checkout.session.completed:paid": lambda order, pi: session_object(order, payment_intent=pi),
    "checkout.session.completed:unpaid": lambda order, pi: session_object(
        order, payment_intent=pi, payment_status="unpaid"
    ),
    "checkout.session.async_payment_succeeded": lambda order, pi: session_object(
        order, payment_intent=pi
    ),
    "checkout.session.async_payment_failed": lambda order, pi: session_object(
        order, payment_intent=pi, payment_status="unpaid"
    ),
    "checkout.session.expired": lambda order, pi: session_object(
        order, payment_intent=pi, status="expired", payment_status="unpaid"
    ),
}


@dataclass(frozen=True)
class Flow:
    name: str
    events: tuple[str, ...]  # keys of OBJECTS, in the order Stripe sends them
    status: str
    payment_status: str
    paid: bool  # whether amount_paid ends at the order's total (else 0)


FLOWS = [
    Flow(
        "card success",
        (
            "payment_intent.created",
            "charge.succeeded",
            "payment_intent.succeeded",
            "checkout.session.completed:paid",
        ),
        "paid",
        "paid",
        paid=True,
    ),
    Flow(
        "decline then success",
        (
            "payment_intent.created",
            "payment_intent.payment_failed",
            "charge.succeeded",
            "payment_intent.succeeded",
            "checkout.session.completed:paid",
        ),
        "paid",
        "paid",
        paid=True,
    ),
    Flow(
        "delayed success",
        (
            "checkout.session.completed:unpaid",
            "payment_intent.succeeded",
            "checkout.session.async_payment_succeeded",
        ),
        "paid",
        "paid",
        paid=True,
    ),
    Flow(
        "delayed failure",
        (
            "checkout.session.completed:unpaid",
            "payment_intent.payment_failed",
            "checkout.session.async_payment_failed",
        ),
        "failed",
        "unpaid",
        paid=False,
    ),
    Flow(
        "abandoned",
        ("payment_intent.payment_failed", "payment_intent.canceled", "checkout.session.expired"),
        "expired",
        "unpaid",
        paid=False,
    ),
]


def deliveries(flow: Flow) -> st.SearchStrategy[tuple[int, ...]]:
    """The indexes of the flow's events in delivery order: each event 1 to 3 times,
    the whole sequence in any order. (Hypothesis tries the simplest case first: each
    event once, in Stripe's order.)"""
    copies = st.lists(st.integers(1, 3), min_size=len(flow.events), max_size=len(flow.events))
    return copies.flatmap(
        lambda n: st.permutations([i for i, times in enumerate(n) for _ in range(times)])
    ).map(tuple)


def flow_properties(test: Callable[..., None]) -> Callable[..., None]:
    """Runs `test` for every flow; hypothesis draws (through `data`) 12 delivery
    sequences per flow, a fresh order for each."""
    test = given(data=st.data())(test)
    test = settings(
        max_examples=12,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )(test)
    parametrized: Callable[..., None] = pytest.mark.parametrize(
        "flow", FLOWS, ids=[f.name for f in FLOWS]
    )(test)
    return parametrized


@dataclass
class Run:
    order: Order
    flow: Flow
    event_ids: list[str]  # one per event of the flow


def deliver(client: Client, flow: Flow, sequence: tuple[int, ...]) -> Iterator[Run]:
    """Delivers and processes the flow's events in `sequence`, yielding after each."""
    order = order_build()
    intent_id = new_intent_id()
    run = Run(order, flow, [f"evt_test_{uuid.uuid4().hex[:24]}" for _ in flow.events])
    payloads = [
        event_json(
            key.split(":")[0],
            OBJECTS[key](order, intent_id),
            event_id=event_id,
            created=1_800_000_000 + offset,
        )
        for offset, (key, event_id) in enumerate(zip(flow.events, run.event_ids, strict=True))
    ]
    for index in sequence:
        response = post_event(client, payloads[index])
        assert response.status_code == 200, response.content
        stripe_event_process(event_id=run.event_ids[index])
        order.refresh_from_db()
        yield run


def final(client: Client, flow: Flow, sequence: tuple[int, ...]) -> Run:
    """The run once every delivery is processed."""
    return list(deliver(client, flow, sequence))[-1]


@flow_properties
def test_any_order_and_repetition_of_a_flows_events_ends_in_the_models_state(
    demo_catalog: None, client: Client, flow: Flow, data: st.DataObject
) -> None:
    order = final(client, flow, data.draw(deliveries(flow), label="sequence")).order
    expected = (flow.status, flow.payment_status, order.total if flow.paid else 0, False)
    assert (order.status, order.payment_status, order.amount_paid, order.needs_attention) == (
        expected
    )


@flow_properties
def test_paid_once_reached_is_never_lost_after_any_prefix_of_deliveries(
    demo_catalog: None, client: Client, flow: Flow, data: st.DataObject
) -> None:
    seen_paid = False
    for run in deliver(client, flow, data.draw(deliveries(flow), label="sequence")):
        order = run.order
        if seen_paid:
            assert (order.status, order.payment_status, order.amount_paid) == (
                "paid",
                "paid",
                order.total,
            )
        seen_paid = seen_paid or order.status == "paid"


@flow_properties
def test_any_order_and_repetition_moves_the_order_exactly_once(
    demo_catalog: None, client: Client, flow: Flow, data: st.DataObject
) -> None:
    run = final(client, flow, data.draw(deliveries(flow), label="sequence"))
    transitions = OrderEvent.objects.filter(order=run.order, kind=OrderEvent.Kind.TRANSITION)
    assert list(transitions.values_list("from_status", "to_status")) == [("pending", flow.status)]


@flow_properties
def test_every_event_is_stored_once_with_the_number_of_times_it_was_delivered(
    demo_catalog: None, client: Client, flow: Flow, data: st.DataObject
) -> None:
    sequence = data.draw(deliveries(flow), label="sequence")
    run = final(client, flow, sequence)
    stored = StripeEvent.objects.filter(pk__in=run.event_ids).values_list("pk", "delivery_count")
    assert sorted(stored) == sorted((eid, sequence.count(i)) for i, eid in enumerate(run.event_ids))
