"""Duplicates and concurrency: every event of a paid flow delivered 1 to 5 times at once
from several processes (each its own Django and database connection), then processed by
several workers at once. The order is paid exactly once, each Stripe event leaves one
timeline entry, and events for one order are serialized so that no update is lost."""

import json
import multiprocessing
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
from django.db import connection, connections
from django.test import Client

from djangomart.orders.models import Order, OrderEvent
from djangomart.payments.inbox import stripe_event_process
from djangomart.payments.models import Payment, StripeEvent
from tests.payments.conftest import event_json, intent_object, post_event, run_jobs, session_object
from tests.payments.race_helpers import (
    event_jobs,
    held_transaction,
    is_due,
    lock_waiters_wait,
    order_pending,
    order_row_locked,
)

pytestmark = pytest.mark.django_db(transaction=True)

DELIVERY_TIMEOUT = 60


def _deliver(barrier: Any, results: Any, payloads: list[str]) -> None:
    """Runs in a forked process: its own Django test client and its own connection."""
    try:
        client = Client()
        # Connect first, then all post at once: the race is on the inbox row.
        connection.ensure_connection()
        barrier.wait(DELIVERY_TIMEOUT)
        for payload in payloads:
            response = post_event(client, payload)
            results.put((json.loads(payload)["id"], response.status_code, response.json()))
    except BaseException as exc:
        results.put(("error", 0, {"error": repr(exc)}))
        raise
    finally:
        connections.close_all()


def deliver_concurrently(deliveries: dict[str, int], *, seed: int = 0) -> list[Any]:
    """Posts each payload `deliveries[payload]` times, all at once, from as many processes
    as the largest count: process i posts every payload delivered more than i times, in
    its own shuffled order. Returns (event id, status, body) per delivery."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible shuffle, not a secret
    plan = []
    for i in range(max(deliveries.values())):
        mine = [payload for payload, count in deliveries.items() if count > i]
        rng.shuffle(mine)
        plan.append(mine)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(plan))
    results = context.Queue()
    # A forked child must not inherit (and then share) this process's open connection.
    connections.close_all()
    processes = [
        context.Process(target=_deliver, args=(barrier, results, payloads), daemon=True)
        for payloads in plan
    ]
    for process in processes:
        process.start()
    try:
        answers = [results.get(timeout=DELIVERY_TIMEOUT) for _ in range(sum(deliveries.values()))]
    finally:
        for process in processes:
            process.join(DELIVERY_TIMEOUT)
            if process.is_alive():
                process.kill()
    assert [p.exitcode for p in processes] == [0] * len(processes), answers
    return answers


def run_at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Runs every call in its own thread (own connection), released together by a
    barrier; returns their results and re-raises the first error."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        try:
            connection.ensure_connection()
            barrier.wait(30)
            return call()
        finally:
            connection.close()  # the thread's own connection

    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
    return [future.result() for future in futures]


def process_concurrently(event_ids: list[str], *, workers_per_event: int = 3) -> list[str]:
    return run_at_once(
        [
            partial(stripe_event_process, event_id=event_id)
            for event_id in event_ids
            for _ in range(workers_per_event)
        ]
    )


@dataclass
class PaidFlow:
    order: Order
    ids: dict[str, str]  # step -> Stripe event id
    deliveries: dict[str, int]  # step -> how many times it was delivered
    answers: list[Any] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)


def paid_flow_payloads(order: Order) -> dict[str, str]:
    """A declined card, then a good one in the same Checkout Session (one PaymentIntent)."""
    intent_id = f"pi_test_{uuid.uuid4().hex[:24]}"
    now = int(time.time())
    declined = intent_object(
        order,
        intent_id,
        status="requires_payment_method",
        amount_received=0,
        last_payment_error={
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": "Your card was declined.",
        },
    )
    return {
        "payment_failed": event_json("payment_intent.payment_failed", declined, created=now - 20),
        "session_completed": event_json(
            "checkout.session.completed",
            session_object(order, payment_intent=intent_id),
            created=now,
        ),
        "intent_succeeded": event_json(
            "payment_intent.succeeded", intent_object(order, intent_id), created=now
        ),
    }


DELIVERY_PLANS = [
    {"payment_failed": 1, "session_completed": 5, "intent_succeeded": 3},
    {"payment_failed": 4, "session_completed": 2, "intent_succeeded": 5},
]


@pytest.fixture(params=DELIVERY_PLANS, ids=lambda plan: "-".join(map(str, plan.values())))
def paid_flow(request: Any, stripe_settings: Any) -> PaidFlow:
    """The flow delivered concurrently by several processes, then processed by three
    workers per event at once, then the queued jobs run by a real worker."""
    order = order_pending()
    payloads = paid_flow_payloads(order)
    plan: dict[str, int] = request.param
    flow = PaidFlow(
        order=order,
        ids={step: json.loads(payload)["id"] for step, payload in payloads.items()},
        deliveries=plan,
    )
    flow.answers = deliver_concurrently({payloads[step]: n for step, n in plan.items()})
    flow.outcomes = process_concurrently(list(flow.ids.values()))
    run_jobs()
    flow.order.refresh_from_db()
    return flow


def test_every_concurrent_delivery_is_acknowledged_and_exactly_one_is_new(
    paid_flow: PaidFlow,
) -> None:
    seen: dict[str, list[bool]] = {}
    for event_id, status, body in paid_flow.answers:
        assert status == 200, body
        seen.setdefault(event_id, []).append(body["duplicate"])

    assert {event_id: sorted(flags) for event_id, flags in seen.items()} == {
        paid_flow.ids[step]: [False] + [True] * (n - 1) for step, n in paid_flow.deliveries.items()
    }


def test_each_event_is_stored_once_with_its_delivery_count(paid_flow: PaidFlow) -> None:
    stored = dict(StripeEvent.objects.values_list("id", "delivery_count"))

    assert stored == {paid_flow.ids[step]: n for step, n in paid_flow.deliveries.items()}


def test_no_event_is_left_due_and_none_queued_a_job(paid_flow: PaidFlow) -> None:
    # A waiting PaymentIntent event made due again was worked off with the rest.
    assert {event_id: is_due(event_id) for event_id in paid_flow.ids.values()} == {
        event_id: False for event_id in paid_flow.ids.values()
    }
    assert event_jobs() == []


def test_each_event_ends_processed_on_its_first_attempt(paid_flow: PaidFlow) -> None:
    events = StripeEvent.objects.filter(pk__in=paid_flow.ids.values())

    # A waiting event queued again starts afresh (attempts 0), like a replay.
    assert sorted(events.values_list("status", "attempts")) == [("processed", 1)] * 3
    index = list(paid_flow.ids).index("intent_succeeded")
    others = paid_flow.outcomes[: 3 * index] + paid_flow.outcomes[3 * index + 3 :]
    assert set(others) == {"processed"}
    assert set(paid_flow.outcomes[3 * index : 3 * index + 3]) <= {"processed", "unmatched"}


def test_the_order_moves_to_paid_exactly_once(paid_flow: PaidFlow) -> None:
    transitions = paid_flow.order.events.filter(kind=OrderEvent.Kind.TRANSITION)

    assert list(transitions.values_list("from_status", "to_status")) == [("pending", "paid")]
    assert transitions.get().stripe_event_id in {
        paid_flow.ids["session_completed"],
        paid_flow.ids["intent_succeeded"],
    }


def test_each_stripe_event_leaves_one_timeline_entry_per_kind(paid_flow: PaidFlow) -> None:
    entries = Counter(
        paid_flow.order.events.exclude(stripe_event_id="").values_list("stripe_event_id", "kind")
    )

    assert set(entries.values()) == {1}
    by_event = {paid_flow.ids[step]: step for step in paid_flow.ids}
    kinds = {(by_event[event_id], kind) for event_id, kind in entries}
    # Whichever success was applied first moved the order; the other one confirmed it.
    assert kinds in (
        {
            ("payment_failed", "payment_attempt_failed"),
            ("session_completed", "transition"),
            ("intent_succeeded", "payment_recorded"),
        },
        {
            ("payment_failed", "payment_attempt_failed"),
            ("session_completed", "payment_recorded"),
            ("intent_succeeded", "transition"),
        },
    )


def test_the_order_is_paid_in_full_by_one_payment(paid_flow: PaidFlow) -> None:
    order = paid_flow.order

    assert (order.status, order.payment_status, order.amount_paid, order.needs_attention) == (
        "paid",
        "paid",
        order.total,
        False,
    )
    assert list(Payment.objects.values_list("order", "amount_received", "succeeded")) == [
        (order.pk, order.total, True)
    ]


# --- Different events for one order: serialized on the order's row lock ---


def intent_succeeded(order: Order, *, amount: int, currency: str | None = None) -> str:
    """A succeeded PaymentIntent of the order's own (as if its session had named it)."""
    intent_id = f"pi_test_{uuid.uuid4().hex[:24]}"
    Payment.objects.create(order=order, stripe_payment_intent_id=intent_id)
    obj = intent_object(
        order, intent_id, amount=amount, amount_received=amount, currency=currency or order.currency
    )
    return event_json("payment_intent.succeeded", obj)


def process_while_racing(client: Client, order: Order, payloads: list[str]) -> list[str]:
    """Stores the events, then has one worker per event process them at once while this
    test holds the order's row lock, so that every worker is inside its transaction
    (event claimed) before the first can go on; then lets them go."""
    ids = [json.loads(payload)["id"] for payload in payloads]
    for payload in payloads:
        assert post_event(client, payload).status_code == 200
    with ThreadPoolExecutor(1) as pool:
        with held_transaction(order_row_locked(order.pk)):
            running = pool.submit(
                run_at_once, [partial(stripe_event_process, event_id=event_id) for event_id in ids]
            )
            lock_waiters_wait(len(ids))
        outcomes: list[str] = running.result(timeout=30)
    run_jobs()
    return outcomes


def test_two_payments_processed_at_once_for_one_order_both_count(
    client: Client, stripe_settings: Any
) -> None:
    order = order_pending()
    first = order.total // 4
    payloads = [
        intent_succeeded(order, amount=first),
        intent_succeeded(order, amount=order.total - first),
    ]

    outcomes = process_while_racing(client, order, payloads)

    order.refresh_from_db()
    assert outcomes == ["processed", "processed"]
    # Both partial payments are counted (no lost update); neither alone pays the order,
    # so it is not `paid` and a human is asked to look.
    assert order.amount_paid == order.total
    assert (order.status, order.payment_status) == ("pending", "unpaid")
    assert order.attention_reasons == ["amount_mismatch"]


def test_two_flags_raised_at_once_on_one_order_are_both_kept(
    client: Client, stripe_settings: Any
) -> None:
    order = order_pending()
    payloads = [
        intent_succeeded(order, amount=order.total - 1),
        intent_succeeded(order, amount=order.total, currency="eur"),
    ]

    process_while_racing(client, order, payloads)

    order.refresh_from_db()
    assert order.needs_attention
    assert sorted(order.attention_reasons) == ["amount_mismatch", "currency_mismatch"]


def test_a_repeated_delivery_is_acknowledged_and_counted_while_a_worker_holds_the_event(
    client: Client, stripe_settings: Any
) -> None:
    """The worker claims the event, then waits for the order's lock; a repeated delivery
    of that event meanwhile is answered at once, and its count survives the worker's
    own write of the event."""
    order = order_pending()
    payload = event_json("checkout.session.completed", session_object(order))
    event_id = json.loads(payload)["id"]
    assert post_event(client, payload).status_code == 200
    outcome: list[str] = []

    def work() -> None:
        try:
            outcome.append(stripe_event_process(event_id=event_id))
        finally:
            connection.close()

    with held_transaction(order_row_locked(order.pk)):
        worker = threading.Thread(target=work)
        worker.start()
        lock_waiters_wait(1)  # the worker holds the claim and waits for the order
        # "At once" is "without waiting for any lock": had the ingest queued behind the
        # worker, PostgreSQL would cancel its statement (a 503 here), however fast the
        # machine; no wall-clock limit.
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
        try:
            response = post_event(client, payload)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
    worker.join(15)
    assert (response.status_code, response.json()["duplicate"]) == (200, True)
    assert outcome == ["processed"]
    assert StripeEvent.objects.get(pk=event_id).delivery_count == 2
