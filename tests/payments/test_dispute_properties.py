"""Reordering and repetition of dispute events: whatever order Stripe delivers a dispute's
`charge.dispute.*` events in (and the session event that tells the shop the PaymentIntent
is the order's own), and however often each arrives, the Dispute row and the order's
`disputed`, `dispute_lost`, `amount_lost_to_disputes` and attention end the same.

Each event is signed and posted to /webhooks/stripe and processed at once, with anything
it queued again (a dispute event that arrived before the session waits, and is requeued
when the session names its PaymentIntent). Repeats come three ways, as in
test_properties.py: Stripe's retry of the same event (a duplicate), the same snapshot
under a new event id (the handler runs again), and a staff replay of the stored event.

Every ordering of each flow's dispute events is tried (with the session first and
last) where they are few, a fixed sample plus a few fresh ones each run where they are
many; each event is repeated every way after a flow, and hypothesis samples
interleavings of deliveries and repeats (the session anywhere among them)."""

import itertools
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from djangomart.orders.models import Order
from djangomart.payments.inbox import stripe_event_process, stripe_event_replay
from djangomart.payments.models import Dispute, StripeEvent
from tests.payments.builders import dispute_object, new_dispute_id, new_intent_id, order_build
from tests.payments.conftest import event_json, post_event, session_object

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_settings", "demo_catalog")]

T0 = 1_800_000_000
DUE = 1_800_604_800
SESSION = "checkout.session.completed"


@dataclass(frozen=True)
class Step:
    """One event of a flow: its type, the dispute's status in it, when it was created
    (seconds after T0) and anything else its dispute object says."""

    type: str
    status: str = ""
    at: int = 0
    extra: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Flow:
    name: str
    steps: tuple[Step, ...]
    # The Dispute row at the end: status, is_charge_refundable, funds_withdrawn,
    # funds_reinstated, snapshot_created (seconds after T0).
    dispute: tuple[str, bool, bool, bool, int]
    # The order at the end: disputed, dispute_lost, amount_lost_to_disputes (of 4000),
    # attention reasons.
    order: tuple[bool, bool, int, list[str]]


EVIDENCE = (("evidence_details", {"due_by": DUE, "has_evidence": True, "submission_count": 1}),)
CHARGEBACK = (("is_charge_refundable", False),)

FLOWS = [
    Flow(
        "won",
        (
            Step(SESSION),
            Step("charge.dispute.created", "needs_response"),
            Step("charge.dispute.funds_withdrawn", "needs_response"),
            Step("charge.dispute.updated", "under_review", 60, EVIDENCE),
            Step("charge.dispute.closed", "won", 120),
            Step("charge.dispute.funds_reinstated", "won", 120),
        ),
        ("won", False, True, True, 120),
        (False, False, 0, []),
    ),
    Flow(
        "lost",
        (
            Step(SESSION),
            Step("charge.dispute.created", "needs_response"),
            Step("charge.dispute.funds_withdrawn", "needs_response"),
            Step("charge.dispute.updated", "under_review", 60, EVIDENCE),
            Step("charge.dispute.closed", "lost", 120),
        ),
        ("lost", False, True, False, 120),
        (False, True, 4000, ["dispute_lost"]),
    ),
    Flow(
        # Answered in the same second it was opened: the later status of a dispute's life
        # wins the tie.
        "inquiry closed",
        (
            Step(SESSION),
            Step("charge.dispute.created", "warning_needs_response"),
            Step("charge.dispute.updated", "warning_under_review", 0, EVIDENCE),
            Step("charge.dispute.closed", "warning_closed", 30),
        ),
        ("warning_closed", True, False, False, 30),
        (False, False, 0, []),
    ),
    Flow(
        "inquiry escalated, still open",
        (
            Step(SESSION),
            Step("charge.dispute.created", "warning_needs_response"),
            Step("charge.dispute.updated", "needs_response", 5, CHARGEBACK),
            Step("charge.dispute.funds_withdrawn", "needs_response", 5, CHARGEBACK),
            Step("charge.dispute.updated", "under_review", 5, CHARGEBACK + EVIDENCE),
        ),
        ("under_review", False, True, False, 5),
        (True, False, 0, ["dispute_open"]),
    ),
]
FLOW_IDS = [flow.name for flow in FLOWS]

How = Literal["send", "copy", "replay"]


@dataclass
class Run:
    """One flow's events for one fresh order."""

    flow: Flow
    order: Order = field(default_factory=order_build)
    intent_id: str = field(default_factory=new_intent_id)
    dispute_id: str = field(default_factory=new_dispute_id)
    event_ids: list[str] = field(default_factory=list)
    payloads: list[str] = field(default_factory=list)
    sent: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        for step in self.flow.steps:
            event_id = f"evt_test_{uuid.uuid4().hex[:24]}"
            self.event_ids.append(event_id)
            self.payloads.append(self.payload(step, event_id))

    def payload(self, step: Step, event_id: str | None = None) -> str:
        if step.type == SESSION:
            obj = session_object(self.order, payment_intent=self.intent_id)
        else:
            obj = dispute_object(
                self.order, self.intent_id, self.dispute_id, step.status, **dict(step.extra)
            )
        return event_json(step.type, obj, event_id=event_id, created=T0 + step.at)

    def deliver(self, client: Client, index: int, how: How) -> None:
        if how == "replay" and index not in self.sent:
            how = "send"
        if how == "send":
            self.sent.add(index)
            self.post(client, self.payloads[index])
        elif how == "copy":
            self.post(client, self.payload(self.flow.steps[index]))
        else:
            event_id = self.event_ids[index]
            StripeEvent.objects.filter(pk=event_id).update(status=StripeEvent.Status.DEAD)
            stripe_event_replay(event_id=event_id)
            self.process(event_id)

    def post(self, client: Client, payload: str) -> None:
        response = post_event(client, payload)
        assert response.status_code == 200, response.content
        self.process(json.loads(payload)["id"])

    def process(self, event_id: str) -> None:
        stripe_event_process(event_id=event_id)
        # The worker runs what was queued again (events that waited for the session).
        for requeued in StripeEvent.objects.filter(status=StripeEvent.Status.RECEIVED):
            stripe_event_process(event_id=requeued.pk)


def final_state(run: Run) -> tuple[Any, ...]:
    order = Order.objects.get(pk=run.order.pk)
    disputes = list(
        Dispute.objects.filter(order=order).values_list(
            "stripe_dispute_id",
            "status",
            "amount",
            "currency",
            "reason",
            "evidence_due_by",
            "is_charge_refundable",
            "funds_withdrawn",
            "funds_reinstated",
            "snapshot_created",
            "stripe_payment_intent_id",
        )
    )
    return (
        disputes,
        order.disputed,
        order.dispute_lost,
        order.amount_lost_to_disputes,
        order.needs_attention,
        sorted(order.attention_reasons),
        (order.status, order.payment_status, order.amount_paid, order.amount_refunded),
    )


def expected_state(run: Run) -> tuple[Any, ...]:
    status, refundable, withdrawn, reinstated, at = run.flow.dispute
    disputed, lost, amount_lost, reasons = run.flow.order
    row = (
        run.dispute_id,
        status,
        4000,
        "usd",
        "fraudulent",
        datetime.fromtimestamp(DUE, UTC),
        refundable,
        withdrawn,
        reinstated,
        datetime.fromtimestamp(T0 + at, UTC),
        run.intent_id,
    )
    return (
        [row],
        disputed,
        lost,
        amount_lost,
        bool(reasons),
        sorted(reasons),
        ("paid", "paid", 4000, 0),
    )


def no_event_left(run: Run) -> None:
    """Every stored event of the run was applied: none still waits or fails."""
    left = StripeEvent.objects.filter(order=run.order).exclude(status="processed")
    assert list(left.values_list("type", "status", "last_error")) == []


# Up to this many orderings a flow's are all tried; beyond, a sample (the "won" flow's
# five dispute events make 240, most of this file's run time for cases that differ
# little: the sampled interleavings below explore the rest).
EXHAUSTIVE_MAX = 48
SAMPLED_FIXED = 36  # the same every run (a fixed seed): a failure reproduces
SAMPLED_FRESH = 6  # new every run, their orderings in the subtest's name


def orderings(flow: Flow) -> list[tuple[int, ...]]:
    """Every ordering of the flow's dispute events, with the session event first (nothing
    waits) and last (every dispute event waits for it and is requeued), when there are
    at most EXHAUSTIVE_MAX; else Stripe's own order and its reverse (session first and
    last), SAMPLED_FIXED fixed ones and SAMPLED_FRESH new ones. The session
    in between is left to the sampled test below: all positions would be 720 runs."""
    disputes = range(1, len(flow.steps))
    every = [
        ordering
        for permutation in itertools.permutations(disputes)
        for ordering in ((0, *permutation), (*permutation, 0))
    ]
    if len(every) <= EXHAUSTIVE_MAX:
        return every
    ends = [(0, *disputes), (*disputes, 0), (0, *reversed(disputes)), (*reversed(disputes), 0)]
    rest = [ordering for ordering in every if ordering not in ends]
    fixed = random.Random(flow.name).sample(rest, SAMPLED_FIXED)  # noqa: S311 (not a secret)
    others = [ordering for ordering in rest if ordering not in fixed]
    return ends + fixed + random.sample(others, SAMPLED_FRESH)


@pytest.mark.parametrize("flow", FLOWS, ids=FLOW_IDS)
def test_every_ordering_of_a_disputes_events_ends_in_the_same_state(
    client: Client, flow: Flow, subtests: pytest.Subtests
) -> None:
    for ordering in orderings(flow):
        with subtests.test(ordering=[flow.steps[i].type for i in ordering]):
            run = Run(flow)
            for index in ordering:
                run.deliver(client, index, "send")
            assert final_state(run) == expected_state(run)
            no_event_left(run)


@pytest.mark.parametrize("flow", FLOWS, ids=FLOW_IDS)
def test_each_event_repeated_every_way_after_the_flow_changes_nothing(
    client: Client, flow: Flow
) -> None:
    """Stripe's retry, the same snapshot under a new event id and a staff replay of each
    event, newest first, after the whole flow: the same state, and nothing new on the
    timeline."""
    run = Run(flow)
    for index in range(len(flow.steps)):
        run.deliver(client, index, "send")
    timeline = list(run.order.events.values_list("pk", flat=True))
    for index in reversed(range(len(flow.steps))):
        for how in ("send", "copy", "replay"):
            run.deliver(client, index, how)
    assert final_state(run) == expected_state(run)
    if flow.steps[-1].type != SESSION:
        # A paid order's session event again notes "payment confirmed"; dispute events
        # that teach nothing new write nothing.
        dispute_kinds = run.order.events.exclude(pk__in=timeline).exclude(kind="payment_recorded")
        assert list(dispute_kinds.values_list("kind", "message")) == []


Delivery = tuple[int, How]


def deliveries(flow: Flow) -> st.SearchStrategy[list[Delivery]]:
    """The flow's events, each delivered 1 to 3 times (itself, a copy under a new event id
    or a replay), the whole sequence in any order."""
    how: st.SearchStrategy[How] = st.sampled_from(["send", "copy", "replay"])
    size = len(flow.steps)
    per_event = st.lists(st.lists(how, min_size=1, max_size=3), min_size=size, max_size=size)
    return per_event.flatmap(
        lambda hows: st.permutations([(i, h) for i, hs in enumerate(hows) for h in hs])
    )


@pytest.mark.parametrize("flow", FLOWS, ids=FLOW_IDS)
# Each example runs a whole flow through the inbox: capped so that the suite stays
# inside CI's 10 minutes (the profile's count, at most 10; the orderings above cover
# the session first and last).
@settings(
    max_examples=min(settings().max_examples, 10),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_sampled_interleavings_of_dispute_deliveries_and_repeats_end_in_the_same_state(
    client: Client, flow: Flow, data: st.DataObject
) -> None:
    sequence = data.draw(deliveries(flow), label="deliveries")
    run = Run(flow)
    for index, how in sequence:
        run.deliver(client, index, how)
    # Every event has arrived at least once in some form; make sure each original did.
    for index in range(len(flow.steps)):
        if index not in run.sent:
            run.deliver(client, index, "send")
    assert final_state(run) == expected_state(run)
    no_event_left(run)
