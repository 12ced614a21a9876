"""Staff and policy refunds (payments.refund_requests) against the sandbox over real HTTP:
the refund row is committed first, Stripe is asked with no lock held, and Stripe never
refunds more than was paid, whatever races, timeouts, outages and refusals happen."""

import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.utils import timezone
from procrastinate.contrib.django import app as procrastinate_app
from procrastinate.contrib.django.models import ProcrastinateJob

from djangomart.core.errors import NotFound
from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order, OrderEvent
from djangomart.payments import gateway, refund_requests
from djangomart.payments.checkout import order_sync
from djangomart.payments.models import Dispute, Payment, Refund
from djangomart.payments.refund_requests import (
    ChargeDisputed,
    IdempotencyKeyReused,
    OrderNotPaid,
    RefundExceedsRefundable,
    RefundInvalid,
    RefundNotRetryable,
    refund_policy_queue,
    refund_request,
    refund_retry,
    refundable,
)
from djangomart.payments.tasks import refunds_submit_due_task
from tests.payments.conftest import run_jobs
from tests.payments.race_helpers import in_threads
from tests.payments.stripe_proxy import Handler, StripeProxy
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = pytest.mark.django_db(transaction=True)

GOOD_CARD = "4242424242424242"
SKU = "CLASSIC-TEE-M"  # 20.00 USD: two make an order of 4000


def paid_order(client: Client, sandbox: SandboxServer, quantity: int = 2) -> Order:
    """Checkout, paid at the sandbox, and synced (the order paid, its Payment row)."""
    from djangomart.catalog.demo import demo_catalog_seed

    demo_catalog_seed()
    response = client.post(
        "/api/v1/checkout",
        {"email": "buyer@example.com", "lines": [{"sku": SKU, "quantity": quantity}]},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    sandbox.control(f"checkout/sessions/{body['checkout_session_id']}/pay", {"card": GOOD_CARD})
    order = order_sync(order_id=uuid.UUID(body["order"]["id"]))
    assert (order.status, order.amount_paid) == ("paid", 2000 * quantity)
    return order


@pytest.fixture
def staff(db: None) -> User:
    return User.objects.create_user("alice", is_staff=True)


def charge_of(sandbox: SandboxServer, order: Order) -> dict[str, Any]:
    intent = sandbox.client().v1.payment_intents.retrieve(str(order.stripe_payment_intent_id))
    charge = sandbox.client().v1.charges.retrieve(str(intent.latest_charge))
    return charge.to_dict()


def stripe_refunds(sandbox: SandboxServer, order: Order) -> list[dict[str, Any]]:
    listed = sandbox.client().v1.refunds.list(
        params={"payment_intent": str(order.stripe_payment_intent_id), "limit": 100}
    )
    return [r.to_dict() for r in listed.data]


def refund_posts(sandbox: SandboxServer) -> list[dict[str, Any]]:
    return sandbox.requests(method="POST", path="/v1/refunds")


def ask(order: Order, user: User | None, **kwargs: Any) -> refund_requests.RefundOutcome:
    args: dict[str, Any] = {"amount": None, "reason": None, "note": "", "idempotency_key": None}
    args.update(kwargs)
    return refund_request(order_id=order.pk, user=user, **args)


def test_a_staff_refund_is_committed_then_sent_to_stripe_with_its_own_key(
    sandbox: SandboxServer, client: Client, staff: User
) -> None:
    order = paid_order(client, sandbox)
    outcome = ask(order, staff, amount=1500, reason="requested_by_customer", note="Mug broke")
    refund = outcome.refund
    assert outcome.created
    assert (refund.status, refund.amount, refund.currency, refund.origin) == (
        "succeeded", 1500, "usd", "staff"
    )  # fmt: skip
    assert refund.requested_by == staff
    assert refund.stripe_refund_id is not None
    assert (refund.submit_next_at, refund.last_error, refund.submit_attempts) == (None, "", 1)
    [post] = refund_posts(sandbox)
    assert post["idempotency_key"] == f"refund:{refund.pk}"
    assert post["params"]["metadata"] == {"refund_id": str(refund.pk), "order_id": str(order.pk)}
    assert post["params"]["amount"] == "1500"
    assert charge_of(sandbox, order)["amount_refunded"] == 1500
    with transaction.atomic():
        locked = orders_lock([order.pk])[order.pk]
        assert refundable(locked) == 2500
    notes = OrderEvent.objects.filter(order=order, kind=OrderEvent.Kind.REFUND)
    assert [e.data["status"] for e in notes.order_by("pk")] == ["pending", "succeeded"]
    assert notes.order_by("pk")[0].staff_user == staff
    assert "Mug broke" in notes.order_by("pk")[0].message


def test_without_an_amount_everything_left_is_refunded(
    sandbox: SandboxServer, client: Client, staff: User
) -> None:
    order = paid_order(client, sandbox)
    ask(order, staff, amount=1000)
    outcome = ask(order, staff)
    assert (outcome.refund.amount, outcome.refund.status) == (3000, "succeeded")
    assert charge_of(sandbox, order)["amount_refunded"] == 4000
    with pytest.raises(RefundExceedsRefundable) as nothing_left:
        ask(order, staff)
    assert nothing_left.value.extra["refundable"] == 0
    assert len(refund_posts(sandbox)) == 2


# -- Races -------------------------------------------------------------------------------


def test_staff_refunds_at_the_same_moment_never_refund_more_than_was_paid(
    sandbox: SandboxServer, client: Client, staff: User
) -> None:
    order = paid_order(client, sandbox)  # 4000
    results = in_threads(4, lambda i: ask(order, staff, amount=1500, note=f"clerk {i}"))
    done = [r for r in results if isinstance(r, refund_requests.RefundOutcome)]
    refused = [r for r in results if isinstance(r, RefundExceedsRefundable)]
    assert (len(done), len(refused)) == (2, 2), results
    assert all(r.refund.status == "succeeded" for r in done)
    # Whoever came second saw the first's pending row: only 1000 was left for each.
    assert {(e.extra["refundable"], e.extra["max_amount"]) for e in refused} == {(1000, 1000)}
    assert all("at most 10.00 USD (1000)" in e.message for e in refused)
    charge = charge_of(sandbox, order)
    assert charge["amount_refunded"] == 3000 <= charge["amount"]
    assert len(stripe_refunds(sandbox, order)) == len(refund_posts(sandbox)) == 2
    assert Refund.objects.filter(order=order).count() == 2


def test_the_same_idempotency_key_at_the_same_moment_makes_one_refund(
    sandbox: SandboxServer, client: Client, staff: User
) -> None:
    order = paid_order(client, sandbox)
    results = in_threads(
        3, lambda i: ask(order, staff, amount=700, idempotency_key="double-click-1")
    )
    assert all(isinstance(r, refund_requests.RefundOutcome) for r in results), results
    assert len({r.refund.pk for r in results}) == 1
    assert sorted(r.created for r in results) == [False, False, True]
    assert len(refund_posts(sandbox)) == 1
    assert charge_of(sandbox, order)["amount_refunded"] == 700


def test_no_lock_is_held_while_stripe_is_asked_and_the_row_is_already_committed(
    sandbox: SandboxServer, client: Client, staff: User
) -> None:
    order = paid_order(client, sandbox)
    sandbox.configure(api_latency_min=1.0, api_latency_max=1.0)
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(in_threads(1, lambda i: ask(
        order, staff, amount=900))[0]))  # fmt: skip
    worker.start()
    at_stripe = sandbox.wait_executing(method="POST", path="/v1/refunds")
    with transaction.atomic():
        # NOWAIT: raises at once if the request held the order's row lock.
        Order.objects.select_for_update(nowait=True).get(pk=order.pk)
        pending = Refund.objects.get(order=order)
    assert (pending.status, pending.stripe_refund_id) == ("pending", None)
    assert at_stripe["idempotency_key"] == f"refund:{pending.pk}"
    worker.join(30)
    assert results[0].refund.status == "succeeded", results


# -- Stripe's answer lost, Stripe down -------------------------------------------------


def forward_then_drop(proxy: StripeProxy, handler: Handler, body: bytes) -> None:
    """Stripe gets the request and makes the refund; its answer never reaches us."""
    headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
    requests.post(proxy.upstream + handler.path, data=body, headers=headers, timeout=30)
    handler.drop_connection()


def test_a_lost_answer_is_retried_with_the_same_key_and_stripe_refunds_once(
    sandbox: SandboxServer, client: Client, staff: User, stripe_proxy: Any
) -> None:
    order = paid_order(client, sandbox)

    def lose_first(proxy: StripeProxy, method: str, path: str, count: int, handler: Handler,
                   body: bytes) -> bool:  # fmt: skip
        if (method, path, count) == ("POST", "/v1/refunds", 1):
            forward_then_drop(proxy, handler, body)
            return True
        return False

    stripe_proxy(lose_first)
    outcome = ask(order, staff, amount=2500)
    refund = outcome.refund
    posts = refund_posts(sandbox)
    assert [p["idempotency_key"] for p in posts] == [f"refund:{refund.pk}"] * 2
    assert [p["idempotent_replayed"] for p in posts] == [False, True]
    [at_stripe] = stripe_refunds(sandbox, order)
    assert (refund.status, refund.stripe_refund_id) == ("succeeded", at_stripe["id"])
    assert charge_of(sandbox, order)["amount_refunded"] == 2500


class Outage:
    """A proxy rule: while `down`, every POST /v1/refunds is a 500 before Stripe sees it;
    `lose_first` makes the very first one reach Stripe and lose its answer instead."""

    def __init__(self, *, lose_first: bool = False) -> None:
        self.down = True
        self.lose_first = lose_first

    def __call__(self, proxy: StripeProxy, method: str, path: str, count: int,
                 handler: Handler, body: bytes) -> bool:  # fmt: skip
        if (method, path) != ("POST", "/v1/refunds") or not self.down:
            return False
        if self.lose_first and count == 1:
            forward_then_drop(proxy, handler, body)
        else:
            handler.answer_500()
        return True


def recovery_job_run() -> None:
    """The periodic recovery job, queued as its schedule would, and run by a worker."""
    # By name, as the periodic deferrer does (it passes the schedule's timestamp).
    procrastinate_app.configure_task(name=refunds_submit_due_task.name).defer(
        timestamp=int(time.time())
    )
    run_jobs()


def test_an_outage_past_the_budget_leaves_the_refund_pending_and_the_job_sends_it_once(
    sandbox: SandboxServer, client: Client, staff: User, stripe_proxy: Any
) -> None:
    order = paid_order(client, sandbox)
    outage = Outage()
    proxy = stripe_proxy(outage)
    before = timezone.now()
    outcome = ask(order, staff, amount=1200, reason="duplicate")
    refund = outcome.refund
    assert (refund.status, refund.stripe_refund_id, refund.submit_attempts) == ("pending", None, 1)
    assert refund.submit_next_at is not None
    assert refund.submit_next_at > before
    assert "Stripe could not be reached" in refund.last_error
    assert "sent again automatically" in outcome.message
    assert proxy.seen[("POST", "/v1/refunds")] == 3  # the gateway's own retries
    assert refund_posts(sandbox) == []
    # Still counted: the money is on its way back.
    with pytest.raises(RefundExceedsRefundable):
        ask(order, staff, amount=2801)
    outage.down = False
    recovery_job_run()  # not due yet: nothing sent
    assert refund_posts(sandbox) == []
    Refund.objects.filter(pk=refund.pk).update(submit_next_at=timezone.now())
    recovery_job_run()
    recovery_job_run()
    sent = Refund.objects.get(pk=refund.pk)
    [post] = refund_posts(sandbox)
    assert post["idempotency_key"] == f"refund:{refund.pk}"
    assert (sent.status, sent.submit_attempts, sent.submit_next_at) == ("succeeded", 2, None)
    assert len(stripe_refunds(sandbox, order)) == 1
    notes = OrderEvent.objects.filter(order=order, kind=OrderEvent.Kind.REFUND).order_by("pk")
    assert [n.data["status"] for n in notes] == ["pending", "pending", "succeeded"]
    assert "not sent yet" in notes[1].message


def test_a_refund_our_api_key_is_refused_for_waits_and_goes_through_once_the_key_is_fixed(
    sandbox: SandboxServer, client: Client, staff: User, settings: Any
) -> None:
    """A 401 (a revoked or rotated key) is not the refund's fault: failing it for good
    would leave a policy refund nobody retries. It waits, as for an outage."""
    order = paid_order(client, sandbox)
    good_key = settings.STRIPE_SECRET_KEY
    settings.STRIPE_SECRET_KEY = "rk_test_revoked_key_for_tests"  # the sandbox answers 401
    gateway.client_reset()
    refund = ask(order, staff, amount=1200).refund
    assert (refund.status, refund.stripe_refund_id, refund.failure_reason) == ("pending", None, "")
    assert refund.submit_next_at is not None
    settings.STRIPE_SECRET_KEY = good_key
    gateway.client_reset()
    Refund.objects.filter(pk=refund.pk).update(submit_next_at=timezone.now())
    recovery_job_run()
    sent = Refund.objects.get(pk=refund.pk)
    assert sent.status == "succeeded"
    assert len(stripe_refunds(sandbox, order)) == 1


def test_a_refund_unanswered_for_a_day_is_looked_up_at_stripe_before_it_is_sent_again(
    sandbox: SandboxServer, client: Client, staff: User, stripe_proxy: Any
) -> None:
    """Stripe forgets idempotency keys after 24 hours: the same key would then make a
    second refund. The first attempt reached Stripe; its answer and all retries were lost."""
    order = paid_order(client, sandbox)
    outage = Outage(lose_first=True)
    stripe_proxy(outage)
    refund = ask(order, staff, amount=4000).refund
    assert (refund.status, refund.stripe_refund_id) == ("pending", None)
    [made] = stripe_refunds(sandbox, order)  # Stripe did make it
    outage.down = False
    a_day_ago = timezone.now() - timedelta(hours=24)
    Refund.objects.filter(pk=refund.pk).update(created_at=a_day_ago, submit_next_at=a_day_ago)
    sandbox.control("clock/advance", {"seconds": 25 * 3600})  # the key expired at Stripe
    recovery_job_run()
    refund.refresh_from_db()
    assert (refund.status, refund.stripe_refund_id) == ("succeeded", made["id"])
    assert len(refund_posts(sandbox)) == 1  # only the lost first attempt
    assert sandbox.requests(method="GET", path="/v1/refunds") != []
    assert charge_of(sandbox, order)["amount_refunded"] == 4000


# -- Refusals ----------------------------------------------------------------------------


def test_a_refund_stripe_refuses_under_a_dispute_fails_and_is_retried_once_it_is_won(
    sandbox: SandboxServer, client: Client, staff: User
) -> None:
    order = paid_order(client, sandbox)
    charge = charge_of(sandbox, order)
    # Opened at Stripe only: DjangoMart has not heard of it (no Dispute row), so Stripe
    # is asked and refuses.
    opened = sandbox.control(f"charges/{charge['id']}/dispute", {})
    outcome = ask(order, staff, amount=1000, note="Customer asked")
    failed = outcome.refund
    assert (failed.status, failed.failure_reason) == ("failed", "charge_disputed")
    assert "cannot be refunded" in failed.last_error
    assert failed.stripe_refund_id is None
    assert failed.submit_next_at is None
    assert "It can be retried" in outcome.message
    refused_note = OrderEvent.objects.filter(order=order, kind="refund").order_by("pk").last()
    assert refused_note is not None
    assert "refused by Stripe (charge_disputed)" in refused_note.message
    with transaction.atomic():
        assert refundable(orders_lock([order.pk])[order.pk]) == 4000  # a failed one holds nothing

    sandbox.control(f"disputes/{opened['id']}/close", {"outcome": "won"})
    retried = refund_retry(refund_id=failed.pk, order_id=order.pk, user=staff)
    again = retried.refund
    assert retried.created
    assert again.pk != failed.pk
    assert (again.status, again.amount, again.payment_id, again.note) == (
        "succeeded", 1000, failed.payment_id, "Customer asked"
    )  # fmt: skip
    assert [p["idempotency_key"] for p in refund_posts(sandbox)] == [
        f"refund:{failed.pk}", f"refund:{again.pk}"
    ]  # fmt: skip
    # Retrying the same failed refund again is the retry already made.
    repeat = refund_retry(refund_id=failed.pk, order_id=order.pk, user=staff)
    assert (repeat.created, repeat.refund.pk) == (False, again.pk)
    assert len(refund_posts(sandbox)) == 2
    with pytest.raises(RefundNotRetryable):
        refund_retry(refund_id=again.pk, order_id=order.pk, user=staff)
    with pytest.raises(NotFound):
        refund_retry(refund_id=failed.pk, order_id=uuid.uuid4(), user=staff)
    assert charge_of(sandbox, order)["amount_refunded"] == 1000


def test_a_refund_too_large_at_stripe_fails_and_its_retry_goes_through_once_it_fits(
    sandbox: SandboxServer, client: Client, staff: User
) -> None:
    order = paid_order(client, sandbox)
    # A refund made in the Dashboard, still pending, that DjangoMart has not heard of.
    sandbox.configure(refund_mode="pending")
    dashboard = sandbox.client().v1.refunds.create(
        {"payment_intent": str(order.stripe_payment_intent_id), "amount": 3000}
    )
    sandbox.configure(refund_mode="succeeded")
    failed = ask(order, staff, amount=2000).refund
    assert (failed.status, failed.failure_reason) == ("failed", "amount_too_large")
    assert "greater than unrefunded amount" in failed.last_error
    # The Dashboard's refund fails (the card expired): its money is refundable again.
    sandbox.control(f"refunds/{dashboard.id}/fail", {})
    retried = refund_retry(refund_id=failed.pk, order_id=order.pk, user=staff).refund
    assert (retried.status, retried.amount) == ("succeeded", 2000)
    charge = charge_of(sandbox, order)
    assert charge["amount_refunded"] == 2000 <= charge["amount"]


def test_djangomart_refuses_a_refund_under_an_open_or_lost_dispute_without_asking_stripe(
    sandbox: SandboxServer, client: Client, staff: User
) -> None:
    order = paid_order(client, sandbox)
    payment = order.payments.get()
    dispute = Dispute.objects.create(
        stripe_dispute_id=f"dp_test_{uuid.uuid4().hex[:12]}",
        order=order,
        payment=payment,
        stripe_payment_intent_id=payment.stripe_payment_intent_id,
        amount=4000,
        currency="usd",
        reason="fraudulent",
        status="needs_response",
    )
    with pytest.raises(ChargeDisputed) as refused:
        ask(order, staff, amount=100)
    assert (refused.value.status, refused.value.code) == (409, "charge_disputed")
    dispute.status = "lost"
    dispute.save()
    with pytest.raises(ChargeDisputed):
        ask(order, staff)
    assert Refund.objects.filter(order=order).count() == 0
    assert refund_posts(sandbox) == []
    # An inquiry that leaves the charge refundable, and a won dispute, do not stop it.
    dispute.status, dispute.is_charge_refundable = "warning_needs_response", True
    dispute.save()
    assert ask(order, staff, amount=100).refund.status == "succeeded"
    dispute.status, dispute.is_charge_refundable = "won", False
    dispute.save()
    assert ask(order, staff, amount=200).refund.status == "succeeded"
    assert charge_of(sandbox, order)["amount_refunded"] == 300


# -- Idempotency, validation -------------------------------------------------------------


def test_the_same_key_and_body_return_the_same_refund_and_another_body_is_refused(
    sandbox: SandboxServer, client: Client, staff: User
) -> None:
    order = paid_order(client, sandbox)
    body: dict[str, Any] = {"amount": 1000, "reason": "requested_by_customer", "note": "n"}
    first = ask(order, staff, idempotency_key="key-1", **body)
    again = ask(order, staff, idempotency_key="key-1", **body)
    assert (first.created, again.created) == (True, False)
    assert again.refund.pk == first.refund.pk
    assert again.refund.status == "succeeded"
    assert len(refund_posts(sandbox)) == 1
    for other in ({"amount": 999}, {"reason": "duplicate"}, {"note": "other"}, {"amount": None}):
        with pytest.raises(IdempotencyKeyReused) as reused:
            ask(order, staff, idempotency_key="key-1", **{**body, **other})
        assert (reused.value.status, reused.value.code) == (422, "idempotency_key_reused")
    assert Refund.objects.filter(order=order).count() == 1
    # Keys are per order: another order's same key is another refund.
    other_order = paid_order(client, sandbox)
    elsewhere = ask(other_order, staff, idempotency_key="key-1", **body)
    assert elsewhere.created
    assert elsewhere.refund.order_id == other_order.pk
    assert len(refund_posts(sandbox)) == 2


@pytest.mark.parametrize(
    ("args", "location"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": -5}, "amount"),
        ({"amount": True}, "amount"),
        ({"reason": "changed_my_mind"}, "reason"),
        ({"note": "x" * 501}, "note"),
        ({"idempotency_key": ""}, "header.Idempotency-Key"),
        ({"idempotency_key": "k" * 256}, "header.Idempotency-Key"),
    ],
)
def test_bad_input_is_a_validation_error_and_changes_nothing(
    sandbox: SandboxServer, client: Client, staff: User, args: dict[str, Any], location: str
) -> None:
    order = paid_order(client, sandbox)
    with pytest.raises(RefundInvalid) as invalid:
        ask(order, staff, **args)
    assert (invalid.value.status, invalid.value.code) == (422, "validation_error")
    assert invalid.value.extra["details"][0]["location"] == location
    assert Refund.objects.count() == 0
    assert refund_posts(sandbox) == []


def test_more_than_is_left_is_refused_saying_how_much_is(
    sandbox: SandboxServer, client: Client, staff: User
) -> None:
    order = paid_order(client, sandbox)
    ask(order, staff, amount=1500)
    with pytest.raises(RefundExceedsRefundable) as too_much:
        ask(order, staff, amount=2501)
    error = too_much.value
    assert (error.status, error.code) == (409, "refund_exceeds_refundable")
    assert error.extra == {"refundable": 2500, "max_amount": 2500, "currency": "usd"}
    assert "at most 25.00 USD (2500)" in error.message
    assert ask(order, staff, amount=2500).refund.status == "succeeded"


def test_an_unpaid_order_or_an_unknown_one_is_refused(
    sandbox: SandboxServer, client: Client, staff: User
) -> None:
    from djangomart.catalog.demo import demo_catalog_seed

    demo_catalog_seed()
    response = client.post(
        "/api/v1/checkout",
        {"email": "buyer@example.com", "lines": [{"sku": SKU, "quantity": 1}]},
        content_type="application/json",
    )
    unpaid = Order.objects.get(pk=response.json()["order"]["id"])
    with pytest.raises(OrderNotPaid) as not_paid:
        ask(unpaid, staff)
    assert (not_paid.value.status, not_paid.value.code) == (409, "order_not_paid")
    with pytest.raises(NotFound):
        refund_request(order_id=uuid.uuid4(), amount=None, reason=None, note="", user=staff,
                       idempotency_key=None)  # fmt: skip
    assert Refund.objects.count() == 0
    assert refund_posts(sandbox) == []


def test_refunds_are_asked_outside_any_transaction(
    sandbox: SandboxServer, client: Client, staff: User
) -> None:
    order = paid_order(client, sandbox)
    with transaction.atomic(), pytest.raises(RuntimeError, match="inside a transaction"):
        ask(order, staff)
    assert Refund.objects.count() == 0


# -- The late-payment policy --------------------------------------------------------------


def test_the_policy_refunds_a_payment_once_however_often_it_is_asked(
    sandbox: SandboxServer, client: Client
) -> None:
    order = paid_order(client, sandbox)
    payment = order.payments.get()
    queued = []
    for event_id in ("evt_policy_1", "evt_policy_1", "evt_policy_2"):
        with transaction.atomic():
            locked = orders_lock([order.pk])[order.pk]
            queued.append(refund_policy_queue(locked, payment, stripe_event_id=event_id,
                                              note="Paid after it expired"))  # fmt: skip
    assert len({r.pk for r in queued}) == 1
    refund = Refund.objects.get(order=order)
    assert (refund.origin, refund.amount, refund.status, refund.requested_by) == (
        "policy", 4000, "pending", None
    )  # fmt: skip
    jobs = ProcrastinateJob.objects.filter(task_name="refund_submit")
    assert [j.args for j in jobs] == [{"refund_id": str(refund.pk)}]
    assert refund_posts(sandbox) == []  # nothing sent inside the caller's transaction
    run_jobs()
    refund.refresh_from_db()
    assert refund.status == "succeeded"
    with transaction.atomic():
        locked = orders_lock([order.pk])[order.pk]
        assert refund_policy_queue(locked, payment, stripe_event_id="evt_policy_3", note="")
    run_jobs()
    assert len(refund_posts(sandbox)) == len(stripe_refunds(sandbox, order)) == 1
    assert Refund.objects.filter(order=order).count() == 1
    note = OrderEvent.objects.filter(order=order, kind="refund").order_by("pk").first()
    assert note is not None
    assert note.stripe_event_id == "evt_policy_1"
    assert "late-payment policy" in note.message


def test_money_received_in_another_currency_is_not_refunded_from_here(catalog: None) -> None:
    from tests.payments.builders import new_intent_id, order_build

    order = order_build()
    Payment.objects.create(order=order, stripe_payment_intent_id=new_intent_id(),
                           currency="eur", amount_received=order.total, succeeded=True)  # fmt: skip
    with pytest.raises(OrderNotPaid, match="not in its currency"):
        ask(order, None)
    assert Refund.objects.count() == 0
