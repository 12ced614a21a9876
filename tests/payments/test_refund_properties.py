"""Refund events duplicated and reordered in every way end in the same facts.

Each scenario pays an order through the shop's checkout at the sandbox (over HTTP) and
plays its refunds there (partial refunds, two refunds, a refund that fails after
pending, one that fails after it succeeded...). In each example the sandbox's own
events are then delivered to /webhooks/stripe in an order and with repeats that
hypothesis draws, each processed at once (a prompt worker: events a session requeued
and refunds_sync jobs too). With them go what Stripe also sends about the same
refunds: `charge.refund.updated` (the older signal, a refund object) for every
`refund.updated`, and every `charge.refunded` a second time without its refund list
(as API versions since 2022-11-15 send it), which makes the shop read the refund list
from the sandbox.

Whatever the order, after every delivery no refund's status went backwards and no more
was refunded than paid; at the end the Refund rows are exactly the sandbox's refunds
(amount, status, failure reason), `amount_refunded` is the succeeded ones and
`payment_status` says partially or fully refunded, and every event is processed. Each
example's deliveries are rolled back after it, so that the next starts from the order
as checkout left it."""

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from djangomart.orders.models import Order
from djangomart.payments.models import Refund, StripeEvent
from djangomart.payments.refunds import STATUS_RANK
from tests.payments.refund_helpers import deliver
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("demo_catalog")]

SKU = "CLASSIC-TEE-M"  # 20.00 USD
TOTAL = 4000  # two of them

DELIVERED = frozenset(
    {"checkout.session.completed", "refund.created", "refund.updated", "refund.failed",
     "charge.refunded"}
)  # fmt: skip


class Stage:
    """The scenario's hands on the sandbox: refunds made as in the Dashboard (no
    metadata), settled or failed with the sandbox's scripted routes."""

    def __init__(self, sandbox: SandboxServer, intent_id: str) -> None:
        self.sandbox = sandbox
        self.intent_id = intent_id

    def refund(self, amount: int | None = None, *, mode: str = "succeeded") -> str:
        self.sandbox.configure(refund_mode=mode)
        refunds = self.sandbox.client().v1.refunds
        if amount is None:  # the Dashboard's default: what is left
            return str(refunds.create({"payment_intent": self.intent_id}).id)
        return str(refunds.create({"payment_intent": self.intent_id, "amount": amount}).id)

    def succeed(self, refund_id: str) -> None:
        self.sandbox.control(f"refunds/{refund_id}/succeed", {})

    def fail(self, refund_id: str) -> None:
        self.sandbox.control(f"refunds/{refund_id}/fail", {})


@dataclass(frozen=True)
class Scenario:
    name: str
    play: Callable[[Stage], None]


def _partial(stage: Stage) -> None:
    stage.refund(1500)


def _two_refunds(stage: Stage) -> None:
    stage.refund(1500)
    stage.refund()  # the rest


def _pending_then_succeeded(stage: Stage) -> None:
    stage.succeed(stage.refund(1000, mode="pending"))


def _pending_then_failed(stage: Stage) -> None:
    stage.fail(stage.refund(1000, mode="pending"))


def _succeeded_then_failed(stage: Stage) -> None:
    stage.fail(stage.refund(2500))


def _mixed(stage: Stage) -> None:
    first = stage.refund(1000, mode="pending")
    second = stage.refund(2000, mode="pending")
    stage.succeed(first)
    stage.fail(second)
    stage.refund(500)


SCENARIOS = [
    Scenario("partial refund", _partial),
    Scenario("two refunds, the second the rest", _two_refunds),
    Scenario("pending then succeeded", _pending_then_succeeded),
    Scenario("pending then failed", _pending_then_failed),
    Scenario("succeeded then failed", _succeeded_then_failed),
    Scenario("pending succeeded, pending failed, and a third", _mixed),
]


def newest_event_id(sandbox: SandboxServer) -> str | None:
    page = sandbox.client().v1.events.list(params={"limit": 1})
    return page.data[0].id if page.data else None


def events_after(sandbox: SandboxServer, cursor: str | None) -> list[dict[str, Any]]:
    """The sandbox's events newer than `cursor`, oldest first."""
    found: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        events = sandbox.client().v1.events
        page = events.list({"limit": 100, "starting_after": after} if after else {"limit": 100})
        for event in page.data:
            if event.id == cursor:
                return found[::-1]
            found.append(event.to_dict())
        if not page.has_more:
            return found[::-1]
        after = page.data[-1].id


def new_event_id() -> str:
    return f"evt_test_{uuid.uuid4().hex[:24]}"


def what_stripe_sends(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sandbox's events the shop handles, plus the same facts as Stripe also sends
    them: charge.refund.updated beside refund.updated, charge.refunded without its list."""
    sent = []
    for event in events:
        if event["type"] not in DELIVERED:
            continue
        sent.append(event)
        if event["type"] == "refund.updated":
            sent.append({**event, "id": new_event_id(), "type": "charge.refund.updated"})
        if event["type"] == "charge.refunded":
            charge = {k: v for k, v in event["data"]["object"].items() if k != "refunds"}
            sent.append({**event, "id": new_event_id(), "data": {"object": charge}})
    return sent


def paid_at_sandbox(client: Client, sandbox: SandboxServer) -> tuple[Order, str]:
    response = client.post(
        "/api/v1/checkout",
        {"email": "buyer@example.com", "lines": [{"sku": SKU, "quantity": 2}]},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    paid = sandbox.control(
        f"checkout/sessions/{body['checkout_session_id']}/pay", {"card": "4242424242424242"}
    )
    return Order.objects.get(pk=body["order"]["id"]), str(paid["payment_intent"]["id"])


def truth(sandbox: SandboxServer, intent_id: str) -> list[tuple[str, int, str, str]]:
    listed = sandbox.client().v1.refunds.list({"payment_intent": intent_id, "limit": 100})
    return sorted((r.id, r.amount, str(r.status), r.failure_reason or "") for r in listed.data)


def facts_of(order: Order) -> list[tuple[str | None, int, str, str]]:
    return sorted(
        order.refunds.values_list("stripe_refund_id", "amount", "status", "failure_reason")
    )


Delivery = tuple[int, str]


def deliveries(count: int) -> st.SearchStrategy[list[Delivery]]:
    """Each event 1 to 3 times, each time the event itself (a second `send` is Stripe's
    retry of the same event) or the same object under a new event id; all shuffled."""
    how = st.sampled_from(["send", "copy"])
    per_event = st.lists(st.lists(how, min_size=1, max_size=3), min_size=count, max_size=count)
    return per_event.flatmap(
        lambda hows: st.permutations([(i, h) for i, hs in enumerate(hows) for h in hs])
    )


@dataclass(frozen=True)
class Played:
    """A scenario played once at the sandbox for one paid order: what Stripe sends about
    it and the refunds it ends with there."""

    order: Order
    intent_id: str
    events: list[dict[str, Any]]
    expected: list[tuple[str, int, str, str]]


@pytest.fixture
def played(client: Client, sandbox: SandboxServer, scenario: Scenario) -> Played:
    """Paying over HTTP and playing the scenario is most of an example's cost and the same
    for all of them (hypothesis draws only the deliveries): done once per scenario, and
    each example's deliveries rolled back after it (the test below)."""
    cursor = newest_event_id(sandbox)
    order, intent_id = paid_at_sandbox(client, sandbox)
    scenario.play(Stage(sandbox, intent_id))
    events = what_stripe_sends(events_after(sandbox, cursor))
    return Played(order, intent_id, events, truth(sandbox, intent_id))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
# Capped so that the suite stays inside CI's 10 minutes (the profile's count, at most 8).
@settings(
    max_examples=min(settings().max_examples, 8),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_refund_events_in_any_order_and_number_end_in_the_sandboxs_refunds(
    client: Client, played: Played, data: st.DataObject
) -> None:
    # Each example starts from the order as the checkout left it, paid at the sandbox
    # and not yet told of anything: its deliveries are undone after it (a savepoint).
    with transaction.atomic():
        deliveries_end_in_the_sandboxs_refunds(client, played, data)
        transaction.set_rollback(True)


def deliveries_end_in_the_sandboxs_refunds(
    client: Client, played: Played, data: st.DataObject
) -> None:
    order, intent_id, events, expected = (
        Order.objects.get(pk=played.order.pk),
        played.intent_id,
        played.events,
        played.expected,
    )
    refunded = sum(amount for _, amount, status, _ in expected if status == "succeeded")

    ranks: dict[str | None, int] = {}
    for index, how in data.draw(deliveries(len(events)), label="deliveries"):
        event = events[index] if how == "send" else {**events[index], "id": new_event_id()}
        deliver(client, json.dumps(event))
        order.refresh_from_db()
        assert order.amount_refunded <= order.amount_paid
        for refund in Refund.objects.filter(order=order):
            rank = STATUS_RANK[Refund.Status(refund.status)]
            assert rank >= ranks.get(refund.stripe_refund_id, 0), "a refund went backwards"
            ranks[refund.stripe_refund_id] = rank

    assert facts_of(order) == expected
    assert set(order.refunds.values_list("origin", "payment__stripe_payment_intent_id")) == {
        ("stripe", intent_id)
    }
    order.refresh_from_db()
    assert (order.status, order.amount_paid, order.amount_refunded) == ("paid", TOTAL, refunded)
    assert order.payment_status == (
        "refunded" if refunded == TOTAL else "partially_refunded" if refunded else "paid"
    )
    # A refund that failed at Stripe flags the order (the customer's money is not
    # coming back); nothing else does.
    any_failed = any(status in ("failed", "canceled") for _, _, status, _ in expected)
    assert order.attention_reasons == (["refund_failed"] if any_failed else [])
    stored = StripeEvent.objects.filter(payment_intent_id=intent_id) | StripeEvent.objects.filter(
        order=order
    )
    assert set(stored.values_list("status", flat=True)) == {"processed"}
