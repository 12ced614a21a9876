"""LATE_PAYMENT_POLICY: money, in the right amount and currency, for an order that had
already expired, failed or been canceled (payments.late_payments).

- `accept`: the stock is reserved again (all lines or none) and sold, the order is paid;
  with any line short of stock the money is refunded instead;
- `refund`: exactly one refund at Stripe, the order keeps its ended status;
- `hold`: the order is flagged `late_payment`, nothing else.

Over real HTTP wherever Stripe is involved: checkout at the sandbox, paid there (card
or bank debit), its webhooks delivered to the shop on a live server and processed by
a real worker, the policy's refund sent to the sandbox by its job. The sandbox never
takes money for a session it expired, so an order that ended on our side while the
customer paid at Stripe is made with a hand-built signed event (the expiry) or a staff
cancel while Stripe did not show the session. Repeated and reordered reports of the
same money (both events, the same event twice, a sync) are hand-built too."""

import json
import threading
import uuid
from collections.abc import Callable
from itertools import permutations
from typing import Any

import pytest
import stripe
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Sum
from django.test import Client
from procrastinate.contrib.django.models import ProcrastinateJob

from djangomart.catalog.models import StockMovement, Variant
from djangomart.catalog.services import variants_lock
from djangomart.orders import transitions
from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order, OrderEvent, OrderLine
from djangomart.payments import gateway
from djangomart.payments.checkout import checkout_session_apply
from djangomart.payments.inbox import stripe_event_process
from djangomart.payments.models import Refund, StripeEvent
from djangomart.payments.staff import OrderNotPending, order_staff_accept_paid, order_staff_cancel
from tests.conftest import make_product
from tests.payments.builders import new_intent_id, order_build
from tests.payments.conftest import (
    WEBHOOK_SECRET,
    event_json,
    intent_object,
    post_event,
    run_jobs,
    session_object,
)
from tests.payments.race_helpers import held_transaction, lock_waiters_wait
from tests.payments.stripe_proxy import Handler, StripeProxy
from tests.stripe_sandbox.harness import API_KEY, SandboxServer

GOOD_CARD = "4242424242424242"
TEE, POSTER = "TEE-M", "POSTER-A2"
# One tee (20.00) and two posters (9.00 each): 38.00 USD, two lines.
LINES = [{"sku": TEE, "quantity": 1}, {"sku": POSTER, "quantity": 2}]
TOTAL = 3800
POLICIES = ["accept", "refund", "hold"]


def goods(posters: int = 2) -> None:
    make_product("tee", variants=[(TEE, 2000, 10)])
    make_product("poster", variants=[(POSTER, 900, posters)])


# The jobs a transactional test queued are removed afterwards (tests/payments/conftest.py).
pytestmark = pytest.mark.usefixtures("queued_jobs_removed")


@pytest.fixture
def shop(sandbox: SandboxServer, live_server: Any) -> SandboxServer:
    """The sandbox delivering its webhooks to the shop on a live server."""
    goods()
    sandbox.add_endpoint(f"{live_server.url}/webhooks/stripe", WEBHOOK_SECRET)
    return sandbox


# -- Helpers ----------------------------------------------------------------------------


def checkout(client: Client, lines: list[dict[str, Any]] | None = None) -> tuple[Order, str]:
    response = client.post(
        "/api/v1/checkout",
        {"email": "buyer@example.com", "lines": lines or LINES},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    return Order.objects.get(pk=body["order"]["id"]), body["checkout_session_id"]


def deliver(client: Client, event_type: str, obj: dict[str, Any], *, event_id: str = "") -> str:
    """Posts one signed hand-built event to the webhook; returns its id. A live worker
    (run_jobs) or stripe_event_process processes it."""
    payload = event_json(event_type, obj, event_id=event_id or None)
    response = post_event(client, payload)
    assert response.status_code == 200, response.content
    return str(json.loads(payload)["id"])


def process_received() -> None:
    """What the worker does, in this thread: every stored event not processed yet,
    including those queued again once their PaymentIntent became known."""
    for _ in range(10):
        ids = list(StripeEvent.objects.filter(status="received").values_list("pk", flat=True))
        if not ids:
            return
        for event_id in ids:
            stripe_event_process(event_id=event_id)


def expire_here(client: Client, order: Order) -> None:
    """Our side learns the session expired (a hand-built checkout.session.expired): the
    order expires and gives its stock back. At Stripe the session stays open."""
    session = session_object(order, status="expired", payment_status="unpaid", payment_intent=None)
    deliver(client, "checkout.session.expired", session)
    process_received()
    order.refresh_from_db()
    assert (order.status, order.stock_released) == ("expired", True)


def settle(sandbox: SandboxServer) -> None:
    """Every webhook delivered and every job run (the policy's refund, then the refund's
    own events), none left failing."""
    for _ in range(5):
        sandbox.wait_idle()
        run_jobs()
        sandbox.wait_idle()
        waiting_events = StripeEvent.objects.filter(status__in=["received", "failed"]).exists()
        if not waiting_events and not ProcrastinateJob.objects.filter(status="todo").exists():
            break
    unsettled = StripeEvent.objects.exclude(status__in=["processed", "ignored"])
    assert list(unsettled.values_list("type", "status", "last_error")) == []


def stock(sku: str) -> tuple[int, int]:
    variant = Variant.objects.get(sku=sku)
    return variant.on_hand, variant.reserved


def sold(order: Order) -> dict[str, int]:
    movements = StockMovement.objects.filter(order=order, reason="sale")
    return {m.variant.sku: -m.delta for m in movements.select_related("variant")}


def ledger_is_right() -> None:
    """Every variant's on_hand is the sum of its ledger, and its reserved count is what
    the pending orders (and only they) hold."""
    for variant in Variant.objects.all():
        ledger = variant.movements.aggregate(total=Sum("delta"))["total"] or 0
        held = (
            OrderLine.objects.filter(variant=variant, order__status="pending").aggregate(
                total=Sum("quantity")
            )["total"]
            or 0
        )
        assert (variant.on_hand, variant.reserved) == (ledger, held), variant.sku
    for order in Order.objects.all():
        # Sold exactly when paid; an ended order holds nothing.
        lines = {line.sku: line.quantity for line in order.lines.all()}
        assert sold(order) == (lines if order.status in ("paid", "fulfilled") else {})
        assert order.stock_released == (order.status in ("expired", "failed", "canceled"))


def decisions(order: Order) -> list[dict[str, Any]]:
    return [e.data for e in order.events.filter(kind=OrderEvent.Kind.LATE_PAYMENT)]


def policy_refunds(order: Order) -> list[tuple[int, str, str]]:
    return list(
        Refund.objects.filter(order=order, origin="policy").values_list(
            "amount", "currency", "status"
        )
    )


def refund_posts(sandbox: SandboxServer) -> list[dict[str, Any]]:
    return sandbox.requests(method="POST", path="/v1/refunds")


def refund_jobs() -> int:
    return ProcrastinateJob.objects.filter(task_name="refund_submit").count()


def transitions_of(order: Order) -> list[tuple[str, str]]:
    return list(
        order.events.filter(kind=OrderEvent.Kind.TRANSITION)
        .order_by("pk")
        .values_list("from_status", "to_status")
    )


# -- Each policy, with and without stock left (over the sandbox) -------------------------


def assert_accepted(order: Order, sandbox: SandboxServer) -> None:
    assert (order.status, order.payment_status, order.amount_paid) == ("paid", "paid", TOTAL)
    assert order.stock_released is False
    assert sold(order) == {TEE: 1, POSTER: 2}
    assert (policy_refunds(order), refund_posts(sandbox)) == ([], [])
    assert "late_payment" not in order.attention_reasons
    [decision] = decisions(order)
    assert (decision["outcome"], decision["policy"]) == ("accepted", "accept")


def assert_refunded(order: Order, sandbox: SandboxServer, ended: str) -> Refund:
    assert order.status == ended
    assert order.amount_paid == TOTAL  # the money was received; its refund is a fact of its own
    assert sold(order) == {}
    assert policy_refunds(order) == [(TOTAL, "usd", "succeeded")]
    refund = Refund.objects.get(order=order)
    [post] = refund_posts(sandbox)
    assert post["idempotency_key"] == f"refund:{refund.pk}"
    assert post["params"]["payment_intent"] == order.stripe_payment_intent_id
    [decision] = decisions(order)
    assert (decision["outcome"], decision["refund_id"]) == ("refunded", str(refund.pk))
    assert "late_payment" not in order.attention_reasons
    return refund


def assert_held(order: Order, sandbox: SandboxServer, ended: str) -> None:
    assert (order.status, order.payment_status, order.amount_paid) == (ended, "paid", TOTAL)
    assert (order.needs_attention, order.attention_reasons) == (True, ["late_payment"])
    assert sold(order) == {}
    assert (policy_refunds(order), refund_posts(sandbox)) == ([], [])
    [decision] = decisions(order)
    assert (decision["outcome"], decision["policy"]) == ("held", "hold")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stock_left", [True, False], ids=["stock left", "stock gone"])
@pytest.mark.parametrize("policy", POLICIES)
def test_money_for_an_order_that_expired_here_but_was_paid_at_stripe(
    shop: SandboxServer, client: Client, settings: Any, policy: str, stock_left: bool
) -> None:
    settings.LATE_PAYMENT_POLICY = policy
    order, session_id = checkout(client)
    expire_here(client, order)
    assert (stock(TEE), stock(POSTER)) == ((10, 0), (2, 0))
    if not stock_left:
        # Another customer takes one of the two posters while the first one is paying.
        checkout(client, [{"sku": POSTER, "quantity": 1}])
    shop.control(f"checkout/sessions/{session_id}/pay", {"card": GOOD_CARD})
    settle(shop)
    order.refresh_from_db()
    rival_hold = 0 if stock_left else 1
    if policy == "accept" and stock_left:
        assert_accepted(order, shop)
        assert transitions_of(order) == [("pending", "expired"), ("expired", "paid")]
        assert (stock(TEE), stock(POSTER)) == ((9, 0), (0, 0))
    elif policy in ("accept", "refund"):
        assert_refunded(order, shop, "expired")
        [decision] = decisions(order)
        assert decision["policy"] == policy
        if policy == "accept":
            # All lines or none: the tees, which were there, were not taken either.
            assert decision["out_of_stock"] == [{"sku": POSTER, "wanted": 2, "available": 1}]
        assert (stock(TEE), stock(POSTER)) == ((10, 0), (2, rival_hold))
    else:
        assert_held(order, shop, "expired")
        assert (stock(TEE), stock(POSTER)) == ((10, 0), (2, rival_hold))
    ledger_is_right()


@pytest.mark.django_db(transaction=True)
def test_a_policy_refund_stripe_refuses_flags_the_order_refund_failed(
    shop: SandboxServer, client: Client, settings: Any
) -> None:
    """Nobody asked for the policy's refund in person and the order has ended: when
    Stripe refuses it (here the whole payment was refunded in the Dashboard first), the
    order is flagged so that a human learns the late money's fate."""
    settings.LATE_PAYMENT_POLICY = "refund"
    order, session_id = checkout(client)
    expire_here(client, order)
    paid = shop.control(f"checkout/sessions/{session_id}/pay", {"card": GOOD_CARD})
    dashboard = stripe.StripeClient(API_KEY, base_addresses={"api": shop.url})
    dashboard.v1.refunds.create(params={"payment_intent": paid["payment_intent"]["id"]})
    settle(shop)
    order.refresh_from_db()
    assert order.status == "expired"
    assert sorted(Refund.objects.filter(order=order).values_list("origin", "status")) == [
        ("policy", "failed"),
        ("stripe", "succeeded"),
    ]
    assert (order.amount_refunded, order.payment_status) == (TOTAL, "refunded")
    assert (order.needs_attention, order.attention_reasons) == (True, ["refund_failed"])


def session_unknown_to_stripe(session_id: str) -> Callable[..., bool]:
    """A proxy rule: Stripe answers that it does not know the Checkout Session (another
    account's key, for instance), as staff.py expects can happen."""

    def rule(
        proxy: StripeProxy, method: str, path: str, n: int, handler: Handler, body: bytes
    ) -> bool:
        if path.startswith(f"/v1/checkout/sessions/{session_id}"):
            error = {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "message": f"No such checkout.session: '{session_id}'",
                "param": "id",
            }
            handler.answer_json(404, json.dumps({"error": error}).encode())
            return True
        return False

    return rule


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("policy", POLICIES)
def test_a_bank_debit_that_succeeds_after_staff_canceled_the_order(
    shop: SandboxServer,
    client: Client,
    settings: Any,
    stripe_proxy: Callable[..., StripeProxy],
    policy: str,
) -> None:
    """Staff cancel an order whose bank debit is still processing at Stripe, at a moment
    Stripe does not show them its session (staff.py cancels then: nobody can pay a
    session Stripe does not know); the debit then succeeds. The policy applies to a
    staff cancel as to any other end (docs/payments.md, "Late payments")."""
    settings.LATE_PAYMENT_POLICY = policy
    staff = User.objects.create_user("alice", is_staff=True)
    order, session_id = checkout(client)
    shop.control(f"checkout/sessions/{session_id}/pay", {"method": "delayed"})
    settle(shop)
    order.refresh_from_db()
    assert (order.status, order.payment_status) == ("pending", "processing")

    stripe_proxy(session_unknown_to_stripe(session_id))
    outcome = order_staff_cancel(order_id=order.pk, user=staff, reason="Customer asked by phone")
    assert (outcome.order.status, outcome.ended_by) == ("canceled", None)
    settings.STRIPE_API_BASE = shop.url  # Stripe shows everything again
    gateway.client_reset()

    shop.control(f"checkout/sessions/{session_id}/delayed_payment", {"result": "succeeded"})
    settle(shop)
    order.refresh_from_db()
    # Reported twice (async_payment_succeeded and payment_intent.succeeded), decided once.
    reports = StripeEvent.objects.filter(
        order=order,
        type__in=["checkout.session.async_payment_succeeded", "payment_intent.succeeded"],
    )
    assert reports.count() == 2
    cancel = order.events.get(kind=OrderEvent.Kind.TRANSITION, to_status="canceled")
    assert cancel.staff_user == staff
    if policy == "accept":
        assert_accepted(order, shop)
        assert transitions_of(order) == [("pending", "canceled"), ("canceled", "paid")]
        assert (stock(TEE), stock(POSTER)) == ((9, 0), (0, 0))
    elif policy == "refund":
        assert_refunded(order, shop, "canceled")
        assert (stock(TEE), stock(POSTER)) == ((10, 0), (2, 0))
    else:
        assert_held(order, shop, "canceled")
    ledger_is_right()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("policy", ["accept", "refund"])
def test_duplicated_and_shuffled_deliveries_of_late_money_make_one_outcome(
    shop: SandboxServer, client: Client, settings: Any, policy: str
) -> None:
    """The sandbox delivering every event several times, shuffled, in parallel."""
    settings.LATE_PAYMENT_POLICY = policy
    shop.configure(duplicate_rate=0.7, reorder_window=0.3, parallel_deliveries=8, seed=7)
    order, session_id = checkout(client)
    expire_here(client, order)
    shop.control(f"checkout/sessions/{session_id}/pay", {"card": GOOD_CARD})
    settle(shop)
    order.refresh_from_db()
    copies = [d for d in shop.deliveries() if d["outcome"] == "delivered"]
    assert len(copies) > len({d["event"] for d in copies})  # some did arrive twice
    if policy == "accept":
        assert_accepted(order, shop)
    else:
        assert_refunded(order, shop, "expired")
    ledger_is_right()


# -- Repeated and reordered reports of the same money (hand-built) -----------------------


def report_intent_event(client: Client, order: Order, intent_id: str) -> Callable[[], object]:
    event_id = f"evt_test_{uuid.uuid4().hex[:24]}"
    obj = intent_object(order, intent_id)
    return lambda: deliver(client, "payment_intent.succeeded", obj, event_id=event_id)


def report_session_event(client: Client, order: Order, intent_id: str) -> Callable[[], object]:
    obj = session_object(order, payment_intent=intent_id)
    return lambda: deliver(client, "checkout.session.completed", obj)


def report_sync(client: Client, order: Order, intent_id: str) -> Callable[[], object]:
    """What checkout.order_sync (and so the landing page and reconciliation) applies
    under the order's lock: the session read from Stripe, no Stripe event."""
    session = session_object(order, payment_intent=intent_id)

    def sync() -> None:
        with transaction.atomic():
            checkout_session_apply(orders_lock([order.pk])[order.pk], session)

    return sync


REPORTS = {"intent event": report_intent_event, "session event": report_session_event,
           "sync": report_sync}  # fmt: skip
# The PaymentIntent's event is delivered twice (the same event id).
ORDERINGS = sorted(set(permutations(["intent event", "intent event", "session event", "sync"])))


def outcome_of(order: Order) -> dict[str, Any]:
    order.refresh_from_db()
    return {
        "status": order.status,
        "payment_status": order.payment_status,
        "attention": sorted(order.attention_reasons),
        "sold": sold(order),
        "stock": stock("CLASSIC-TEE-M"),
        "refunds": policy_refunds(order),
        "refund jobs": refund_jobs(),
        "decisions": [d["outcome"] for d in decisions(order)],
        "payments": list(order.payments.values_list("amount_received", "succeeded")),
    }


EXPECTED = {
    "accept": {"status": "paid", "attention": [], "sold": {"CLASSIC-TEE-M": 2},
               "refunds": [], "refund jobs": 0, "decisions": ["accepted"]},
    "accept, stock gone": {"status": "expired", "attention": [], "sold": {},
                           "refunds": [(4000, "usd", "pending")], "refund jobs": 1,
                           "decisions": ["refunded"]},
    "refund": {"status": "expired", "attention": [], "sold": {},
               "refunds": [(4000, "usd", "pending")], "refund jobs": 1,
               "decisions": ["refunded"]},
    "hold": {"status": "expired", "attention": ["late_payment"], "sold": {}, "refunds": [],
             "refund jobs": 0, "decisions": ["held"]},
}  # fmt: skip


@pytest.mark.django_db
@pytest.mark.usefixtures("stripe_settings", "demo_catalog")
@pytest.mark.parametrize("ordering", ORDERINGS, ids=" / ".join)
@pytest.mark.parametrize("case", EXPECTED)
def test_the_same_late_money_reported_in_any_order_any_number_of_times_has_one_outcome(
    client: Client, settings: Any, case: str, ordering: tuple[str, ...]
) -> None:
    settings.LATE_PAYMENT_POLICY = case.split(",")[0]
    order = order_build()  # two CLASSIC-TEE-M, 4000 usd
    expire_here(client, order)
    on_hand = stock("CLASSIC-TEE-M")[0]
    if case == "accept, stock gone":
        rest = on_hand - 1  # one left: the order wants two
        order_build(quantity=rest)
    intent_id = new_intent_id()
    reports = {name: make(client, order, intent_id) for name, make in REPORTS.items()}
    for name in ordering:
        reports[name]()
        process_received()
    outcome = outcome_of(order)
    expected = EXPECTED[case]
    assert {k: outcome[k] for k in expected} == expected
    assert outcome["payment_status"] == "paid"
    assert outcome["payments"] == [(4000, True)]
    if case == "accept":
        assert outcome["stock"] == (on_hand - 2, 0)
    elif case == "accept, stock gone":
        assert outcome["stock"] == (on_hand, on_hand - 1)
    else:
        assert outcome["stock"] == (on_hand, 0)
    # Every event was processed; the intent's repeat was stored once and counted.
    intent_events = StripeEvent.objects.filter(type="payment_intent.succeeded")
    assert list(intent_events.values_list("status", "delivery_count")) == [("processed", 2)]
    ledger_is_right()


@pytest.mark.django_db
@pytest.mark.usefixtures("stripe_settings", "demo_catalog")
def test_the_decision_stands_when_the_setting_changes_before_the_money_is_reported_again(
    client: Client, settings: Any
) -> None:
    settings.LATE_PAYMENT_POLICY = "hold"
    order = order_build()
    expire_here(client, order)
    intent_id = new_intent_id()
    report_session_event(client, order, intent_id)()
    process_received()
    settings.LATE_PAYMENT_POLICY = "accept"
    report_intent_event(client, order, intent_id)()
    process_received()
    order.refresh_from_db()
    assert (order.status, order.attention_reasons, sold(order)) == ("expired", ["late_payment"], {})
    assert [d["outcome"] for d in decisions(order)] == ["held"]
    # The new event flags the order again, as any Stripe event about held money does.
    flags = order.events.filter(kind=OrderEvent.Kind.FLAGGED, data__reason="late_payment")
    assert flags.count() == 2


# -- Each ended status; what never reaches the policy ------------------------------------


def end(client: Client, order: Order, status: str, staff: User | None = None) -> str:
    """Ends a pending order the way each status comes about; returns its PaymentIntent."""
    intent_id = new_intent_id()
    if status == "expired":
        expire_here(client, order)
    elif status == "failed":
        # A bank debit that failed: the session named the PaymentIntent, then failed.
        session = session_object(order, payment_status="unpaid", payment_intent=intent_id)
        deliver(client, "checkout.session.async_payment_failed", session)
        process_received()
    else:
        with transaction.atomic():
            transitions.apply(
                orders_lock([order.pk])[order.pk],
                Order.Status.CANCELED,
                staff_user=staff,
                message="Canceled by staff: test",
            )
    order.refresh_from_db()
    assert (order.status, order.stock_released) == (status, True)
    return intent_id


@pytest.mark.django_db
@pytest.mark.usefixtures("stripe_settings", "demo_catalog")
@pytest.mark.parametrize("status", ["expired", "failed", "canceled"])
def test_accept_revives_an_order_whatever_ended_it(
    client: Client, settings: Any, status: str
) -> None:
    settings.LATE_PAYMENT_POLICY = "accept"
    on_hand = stock("CLASSIC-TEE-M")[0]
    order = order_build()
    intent_id = end(client, order, status)
    deliver(client, "payment_intent.succeeded", intent_object(order, intent_id))
    report_session_event(client, order, intent_id)()
    process_received()
    order.refresh_from_db()
    assert (order.status, order.stock_released, sold(order)) == (
        "paid",
        False,
        {"CLASSIC-TEE-M": 2},
    )
    assert stock("CLASSIC-TEE-M") == (on_hand - 2, 0)
    accepted = order.events.get(kind=OrderEvent.Kind.TRANSITION, to_status="paid")
    assert (accepted.from_status, accepted.data["cause"]) == (status, "late_payment")
    assert [d["outcome"] for d in decisions(order)] == ["accepted"]
    ledger_is_right()


@pytest.mark.django_db
@pytest.mark.usefixtures("stripe_settings", "demo_catalog")
@pytest.mark.parametrize("policy", ["accept", "refund"])
@pytest.mark.parametrize(
    "mismatch", [{"amount_total": 3999}, {"currency": "eur"}], ids=["amount", "currency"]
)
def test_mismatched_late_money_is_flagged_never_accepted_nor_refunded(
    client: Client, settings: Any, policy: str, mismatch: dict[str, Any]
) -> None:
    settings.LATE_PAYMENT_POLICY = policy
    order = order_build()
    expire_here(client, order)
    deliver(client, "checkout.session.completed", session_object(order, **mismatch))
    process_received()
    order.refresh_from_db()
    reason = "amount_mismatch" if "amount_total" in mismatch else "currency_mismatch"
    assert (order.status, order.attention_reasons) == ("expired", [reason])
    assert (decisions(order), policy_refunds(order), refund_jobs(), sold(order)) == ([], [], 0, {})


@pytest.mark.django_db
@pytest.mark.usefixtures("stripe_settings", "demo_catalog")
def test_a_second_late_payment_is_a_duplicate_payment_held_for_staff_not_refunded_again(
    client: Client, settings: Any
) -> None:
    settings.LATE_PAYMENT_POLICY = "refund"
    order = order_build()
    expire_here(client, order)
    first, second = new_intent_id(), new_intent_id()
    deliver(client, "checkout.session.completed", session_object(order, payment_intent=first))
    process_received()
    # The customer paid a second time (another PaymentIntent the order's session names).
    deliver(client, "checkout.session.completed", session_object(order, payment_intent=second))
    process_received()
    order.refresh_from_db()
    assert order.status == "expired"
    assert sorted(order.attention_reasons) == ["duplicate_payment", "late_payment"]
    assert policy_refunds(order) == [(4000, "usd", "pending")]  # the first payment's only
    assert Refund.objects.get(order=order).payment.stripe_payment_intent_id == first
    assert [(d["payment_intent"], d["outcome"]) for d in decisions(order)] == [
        (first, "refunded"),
        (second, "held"),
    ]
    assert decisions(order)[1]["reason"] == "duplicate_payment"


@pytest.mark.django_db
@pytest.mark.usefixtures("stripe_settings", "demo_catalog")
def test_a_second_payment_for_an_order_accepted_late_is_a_duplicate_payment_as_for_any_paid_order(
    client: Client, settings: Any
) -> None:
    settings.LATE_PAYMENT_POLICY = "accept"
    order = order_build()
    expire_here(client, order)
    first, second = new_intent_id(), new_intent_id()
    deliver(client, "checkout.session.completed", session_object(order, payment_intent=first))
    deliver(client, "checkout.session.completed", session_object(order, payment_intent=second))
    process_received()
    order.refresh_from_db()
    assert (order.status, order.attention_reasons) == ("paid", ["duplicate_payment"])
    assert sold(order) == {"CLASSIC-TEE-M": 2}
    assert [d["outcome"] for d in decisions(order)] == ["accepted"]
    ledger_is_right()


# -- The way back to paid is the late payment's only ------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("demo_catalog")
@pytest.mark.parametrize("ended", ["expired", "failed", "canceled"])
def test_no_ordinary_transition_revives_an_ended_order(ended: str) -> None:
    order = order_build()
    with transaction.atomic():
        locked = orders_lock([order.pk])[order.pk]
        assert transitions.apply(locked, ended, message="test")
    assert transitions.TRANSITIONS[ended] == {"paid": transitions.Via.LATE_PAYMENT}
    assert not transitions.can_transition(ended, "paid")
    assert transitions.can_transition(ended, "paid", via=transitions.Via.LATE_PAYMENT)
    before = (stock("CLASSIC-TEE-M"), StockMovement.objects.count())
    with transaction.atomic():
        locked = orders_lock([order.pk])[order.pk]
        assert not transitions.apply(locked, Order.Status.PAID, message="test")
    order.refresh_from_db()
    assert (order.status, order.stock_released) == (ended, True)
    assert (stock("CLASSIC-TEE-M"), StockMovement.objects.count()) == before
    refused = order.events.get(kind=OrderEvent.Kind.TRANSITION_REFUSED)
    assert (refused.from_status, refused.to_status) == (ended, "paid")


@pytest.mark.django_db
@pytest.mark.usefixtures("demo_catalog")
@pytest.mark.parametrize("status", ["pending", "paid"])
def test_late_payment_accept_refuses_an_order_that_has_not_ended(status: str) -> None:
    order = order_build()
    if status == "paid":
        with transaction.atomic():
            transitions.apply(orders_lock([order.pk])[order.pk], Order.Status.PAID)
    with transaction.atomic():
        locked = orders_lock([order.pk])[order.pk]
        with pytest.raises(ValueError, match="cannot move"):
            transitions.late_payment_accept(locked, stripe_event_id="", message="test")


@pytest.mark.django_db
@pytest.mark.usefixtures("stripe_settings", "demo_catalog")
def test_staff_cannot_accept_an_ended_order_as_paid(client: Client) -> None:
    staff = User.objects.create_user("alice", is_staff=True)
    order = order_build()
    end(client, order, "canceled", staff)
    Order.objects.filter(pk=order.pk).update(needs_attention=True, attention_reasons=["x"])
    with pytest.raises(OrderNotPending):
        order_staff_accept_paid(order_id=order.pk, user=staff, reason="Paid by bank transfer")
    order.refresh_from_db()
    assert (order.status, sold(order)) == ("canceled", {})


# -- Two late orders racing for the last units -------------------------------------------


def race(calls: list[Callable[[], None]]) -> list[threading.Thread]:
    """Starts the calls at once, each in its own thread (so its own database connection)
    behind a barrier; returns the threads for the caller to join."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], None]) -> None:
        try:
            barrier.wait(10)
            call()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,), daemon=True) for call in calls]
    for thread in threads:
        thread.start()
    return threads


@pytest.mark.django_db(transaction=True)
def test_two_late_payments_racing_for_the_last_units_one_accepted_one_refunded(
    sandbox: SandboxServer, client: Client, settings: Any
) -> None:
    settings.LATE_PAYMENT_POLICY = "accept"
    make_product("poster", variants=[(POSTER, 900, 2)])
    two = [{"sku": POSTER, "quantity": 2}]
    orders: list[Order] = []
    events: list[str] = []
    for _ in range(2):
        # Each order in turn takes both posters, expires on our side and gives them back.
        order, _session_id = checkout(client, two)
        expire_here(client, order)
        orders.append(order)
    for order in orders:
        # Both customers pay at Stripe; their sessions' completions reach the shop.
        paid = sandbox.control(
            f"checkout/sessions/{order.stripe_checkout_session_id}/pay", {"card": GOOD_CARD}
        )
        session = session_object(order, payment_intent=paid["payment_intent"]["id"])
        events.append(deliver(client, "checkout.session.completed", session))
    variant = Variant.objects.get(sku=POSTER)
    errors: list[BaseException] = []
    outcomes: list[str] = []

    def process(event_id: str) -> Callable[[], None]:
        def work() -> None:
            try:
                outcomes.append(stripe_event_process(event_id=event_id))
            except BaseException as exc:  # noqa: BLE001 - asserted below
                errors.append(exc)

        return work

    # Both workers lock their own order, then queue for the posters' row, held here
    # until both wait for it: neither can have read the stock before the other.
    with held_transaction(lambda: variants_lock([variant.pk])):
        threads = race([process(events[0]), process(events[1])])
        lock_waiters_wait(2)
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert outcomes == ["processed", "processed"]
    run_jobs()  # the loser's refund goes to Stripe

    for order in orders:
        order.refresh_from_db()
    statuses = sorted(o.status for o in orders)
    assert statuses == ["expired", "paid"]
    winner = next(o for o in orders if o.status == "paid")
    loser = next(o for o in orders if o.status == "expired")
    assert sold(winner) == {POSTER: 2}
    assert sold(loser) == {}
    assert policy_refunds(winner) == []
    assert policy_refunds(loser) == [(1800, "usd", "succeeded")]
    [post] = refund_posts(sandbox)
    assert post["params"]["payment_intent"] == loser.stripe_payment_intent_id
    [decision] = decisions(loser)
    assert decision["out_of_stock"] == [{"sku": POSTER, "wanted": 2, "available": 0}]
    assert stock(POSTER) == (0, 0)
    ledger_is_right()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("policy", ["accept", "hold"])
def test_a_checkout_retry_after_late_money_answers_as_the_order_now_is(
    sandbox: SandboxServer, client: Client, settings: Any, policy: str
) -> None:
    """The same Idempotency-Key again: an order accepted late is answered like any paid
    order (201, status paid); one that stayed ended still gets 409 order_closed."""
    settings.LATE_PAYMENT_POLICY = policy
    goods()
    key = f"late-{uuid.uuid4().hex}"
    body = {"email": "buyer@example.com", "lines": LINES}

    def post() -> Any:
        return client.post(
            "/api/v1/checkout", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=key
        )

    first = post()
    assert first.status_code == 201, first.content
    order = Order.objects.get(pk=first.json()["order"]["id"])
    expire_here(client, order)
    deliver(client, "checkout.session.completed", session_object(order))
    process_received()
    again = post()
    if policy == "accept":
        assert again.status_code == 201, again.content
        assert again.json()["order"]["status"] == "paid"
        assert again.json()["checkout_session_id"] == first.json()["checkout_session_id"]
    else:
        assert again.status_code == 409, again.content
        assert (again.json()["code"], again.json()["order_status"]) == ("order_closed", "expired")
