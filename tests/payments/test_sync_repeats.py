"""A sync or reconciliation that repeats what is already known writes nothing: no
timeline row, no changed order, payment or stock row (updated_at included), no refund
row or queued job.

Each state is reached once, then looked at a second time; everything the second look
could write is compared. Only the look's own bookkeeping may change: the sync's rate
limit (last_synced_at) and reconciliation's backoff (reconcile_next_at,
reconcile_attempts), which are written with UPDATE ... so they do not touch updated_at.

States the sandbox reaches are driven over real HTTP (no webhook endpoint: every event
is lost) through the sync endpoint, checkout.order_sync and orders_reconcile_stale; the
ones it cannot show (another mode's session, a malformed paid session, a
PaymentIntent that is another order's or that succeeded while its session still says
unpaid) apply a hand-built session as order_sync does, under the order's lock."""

from collections.abc import Callable
from contextlib import suppress
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone
from procrastinate.contrib.django.models import ProcrastinateJob

from djangomart.catalog.demo import demo_catalog_seed
from djangomart.catalog.models import StockMovement, Variant
from djangomart.catalog.services import variant_stock_change
from djangomart.core.errors import DomainError
from djangomart.orders import transitions
from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order, OrderEvent
from djangomart.payments.checkout import checkout_session_apply, order_sync
from djangomart.payments.models import Payment, Refund
from djangomart.payments.reconcile import GRACE, orders_reconcile_stale
from tests.payments.builders import DEMO_SKU, new_intent_id, order_build
from tests.payments.conftest import intent_object, session_object
from tests.stripe_sandbox.harness import SandboxServer

# The jobs a transactional test queued are removed afterwards (tests/payments/conftest.py).
pytestmark = pytest.mark.usefixtures("queued_jobs_removed")

BOOKKEEPING = ("last_synced_at", "reconcile_next_at", "reconcile_attempts")


def snapshot() -> dict[str, Any]:
    """Every row a look could write."""
    orders = [
        {k: v for k, v in row.items() if k not in BOOKKEEPING}
        for row in Order.objects.order_by("pk").values()
    ]
    return {
        "orders": orders,
        "events": list(OrderEvent.objects.order_by("pk").values_list("pk", "kind", "message")),
        "payments": list(Payment.objects.order_by("pk").values()),
        "variants": list(Variant.objects.order_by("pk").values()),
        "movements": StockMovement.objects.count(),
        "refunds": list(Refund.objects.order_by("pk").values()),
        "jobs": list(ProcrastinateJob.objects.order_by("id").values_list("task_name", "args")),
    }


# -- How a look is made ---------------------------------------------------------------------


def look_sync(client: Client, order: Order) -> None:
    with suppress(DomainError):  # a session Stripe forgot: 409, the order unchanged
        order_sync(order_id=order.pk)


def look_endpoint(client: Client, order: Order) -> None:
    Order.objects.filter(pk=order.pk).update(last_synced_at=None)  # past the rate limit
    response = client.post(f"/api/v1/orders/{order.pk}/sync", HTTP_X_ORDER_TOKEN=order.access_token)
    assert response.status_code in (200, 409), response.content


def look_reconcile(client: Client, order: Order) -> None:
    # Due now (its backoff over); a look at an order that is no longer pending is none.
    Order.objects.filter(pk=order.pk).update(reconcile_next_at=timezone.now() - GRACE)
    pending = Order.objects.get(pk=order.pk).is_pending()
    assert orders_reconcile_stale() == (1 if pending else 0)


LOOKS = {"sync": look_sync, "endpoint": look_endpoint, "reconcile": look_reconcile}


# -- States reached through the sandbox ---------------------------------------------------


def bought(client: Client, sandbox: SandboxServer, **pay: Any) -> tuple[Order, str]:
    demo_catalog_seed()
    response = client.post(
        "/api/v1/checkout",
        {"email": "buyer@example.com", "lines": [{"sku": DEMO_SKU, "quantity": 2}]},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    session_id = body["checkout_session_id"]
    if pay:
        sandbox.control(f"checkout/sessions/{session_id}/pay", pay)
    return Order.objects.get(pk=body["order"]["id"]), session_id


def settle(sandbox: SandboxServer, session_id: str, result: str) -> None:
    sandbox.control(f"checkout/sessions/{session_id}/delayed_payment", {"result": result})


def ended_here(order: Order, status: str) -> None:
    """The order left pending on our side (staff, or our own expiry) while Stripe took
    the money."""
    with transaction.atomic():
        transitions.apply(orders_lock([order.pk])[order.pk], status, message="test")


def open_session(client: Client, sandbox: SandboxServer) -> Order:
    return bought(client, sandbox)[0]


def paid(client: Client, sandbox: SandboxServer) -> Order:
    return bought(client, sandbox, card="4242424242424242")[0]


def declined_then_open(client: Client, sandbox: SandboxServer) -> Order:
    return bought(client, sandbox, card="4000000000000002")[0]


def processing(client: Client, sandbox: SandboxServer) -> Order:
    return bought(client, sandbox, method="delayed")[0]


def delayed_succeeded(client: Client, sandbox: SandboxServer) -> Order:
    order, session_id = bought(client, sandbox, method="delayed")
    settle(sandbox, session_id, "succeeded")
    return order


def delayed_failed(client: Client, sandbox: SandboxServer) -> Order:
    order, session_id = bought(client, sandbox, method="delayed")
    settle(sandbox, session_id, "failed")
    return order


def delayed_failed_seen_processing(client: Client, sandbox: SandboxServer) -> Order:
    order, session_id = bought(client, sandbox, method="delayed")
    order_sync(order_id=order.pk)
    settle(sandbox, session_id, "failed")
    return order


def expired(client: Client, sandbox: SandboxServer) -> Order:
    order = bought(client, sandbox)[0]
    sandbox.control("clock/advance", {"seconds": 90000})
    return order


def amount_mismatch(client: Client, sandbox: SandboxServer) -> Order:
    order = paid(client, sandbox)
    Order.objects.filter(pk=order.pk).update(total=order.total + 100)
    return order


def currency_mismatch(client: Client, sandbox: SandboxServer) -> Order:
    order = paid(client, sandbox)
    Order.objects.filter(pk=order.pk).update(currency="eur")
    return order


def late_payment_on_expired(client: Client, sandbox: SandboxServer) -> Order:
    order = paid(client, sandbox)
    ended_here(order, Order.Status.EXPIRED)
    return order


def late_payment_on_canceled(client: Client, sandbox: SandboxServer) -> Order:
    order = paid(client, sandbox)
    ended_here(order, Order.Status.CANCELED)
    return order


def delayed_failed_on_canceled(client: Client, sandbox: SandboxServer) -> Order:
    order, session_id = bought(client, sandbox, method="delayed")
    ended_here(order, Order.Status.CANCELED)
    settle(sandbox, session_id, "failed")
    return order


def session_unknown_to_stripe(client: Client, sandbox: SandboxServer) -> Order:
    demo_catalog_seed()
    return order_build()


SANDBOX_STATES: dict[str, Callable[[Client, SandboxServer], Order]] = {
    "open": open_session,
    "open after a declined card": declined_then_open,
    "complete/paid": paid,
    "complete/unpaid, intent processing": processing,
    "delayed debit succeeded": delayed_succeeded,
    "complete/unpaid, intent failed": delayed_failed,
    "complete/unpaid, intent failed after processing was seen": delayed_failed_seen_processing,
    "expired": expired,
    "amount mismatch": amount_mismatch,
    "currency mismatch": currency_mismatch,
    "late payment on an expired order": late_payment_on_expired,
    "late payment on a canceled order": late_payment_on_canceled,
    "debit failed on a canceled order": delayed_failed_on_canceled,
    "session Stripe does not know": session_unknown_to_stripe,
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("look", LOOKS)
@pytest.mark.parametrize("state", SANDBOX_STATES)
def test_a_second_look_writes_nothing(
    client: Client, sandbox: SandboxServer, state: str, look: str
) -> None:
    order = SANDBOX_STATES[state](client, sandbox)
    LOOKS[look](client, order)
    before = snapshot()
    LOOKS[look](client, order)
    assert snapshot() == before


# -- Late money under each LATE_PAYMENT_POLICY ---------------------------------------------


def late_payment_stock_gone(client: Client, sandbox: SandboxServer) -> Order:
    """Paid at Stripe, expired here, and meanwhile the shelf lost all but one unit: the
    accept policy refunds instead."""
    order = late_payment_on_expired(client, sandbox)
    variant = Variant.objects.get(sku=DEMO_SKU)
    variant_stock_change(variant_id=variant.pk, delta=1 - variant.available, reason="adjustment")
    return order


def delayed_succeeded_on_canceled(client: Client, sandbox: SandboxServer) -> Order:
    order, session_id = bought(client, sandbox, method="delayed")
    ended_here(order, Order.Status.CANCELED)
    settle(sandbox, session_id, "succeeded")
    return order


# (policy, state, what the policy does): the first look applies the policy (no Stripe
# event), the second writes nothing: no second refund row or job, reservation or sale.
LATE_STATES: dict[str, tuple[str, Callable[[Client, SandboxServer], Order], str]] = {
    "accept, stock left": ("accept", late_payment_on_expired, "accepted"),
    "accept, stock gone": ("accept", late_payment_stock_gone, "refunded"),
    "refund": ("refund", late_payment_on_expired, "refunded"),
    "hold": ("hold", late_payment_on_expired, "held"),
    "accept, debit succeeded on a canceled order": (
        "accept",
        delayed_succeeded_on_canceled,
        "accepted",
    ),
    "refund, debit succeeded on a canceled order": (
        "refund",
        delayed_succeeded_on_canceled,
        "refunded",
    ),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("look", ["sync", "endpoint"])  # reconciliation skips ended orders
@pytest.mark.parametrize("case", LATE_STATES)
def test_a_second_look_at_late_money_writes_nothing(
    client: Client, sandbox: SandboxServer, settings: Any, case: str, look: str
) -> None:
    policy, state, outcome = LATE_STATES[case]
    settings.LATE_PAYMENT_POLICY = policy
    order = state(client, sandbox)
    LOOKS[look](client, order)
    decided = order.events.filter(kind=OrderEvent.Kind.LATE_PAYMENT)
    assert [e.data["outcome"] for e in decided] == [outcome]
    refunds = Refund.objects.filter(order=order, origin="policy").count()
    assert refunds == (1 if outcome == "refunded" else 0)
    before = snapshot()
    LOOKS[look](client, order)
    assert snapshot() == before


# -- States only hand-built sessions reach -----------------------------------------------


def hand_built(order: Order, session: dict[str, Any], intent: dict[str, Any] | None = None) -> None:
    """order_sync's step under the lock (no Stripe event)."""
    with transaction.atomic():
        checkout_session_apply(orders_lock([order.pk])[order.pk], session, intent=intent)


def foreign_livemode(order: Order) -> Callable[[], None]:
    session = session_object(order, livemode=True)
    return lambda: hand_built(order, session)


def foreign_before_stored(order: Order) -> Callable[[], None]:
    Order.objects.filter(pk=order.pk).update(stripe_checkout_session_id=None)
    order.refresh_from_db()
    session = session_object(order, amount_total=order.total + 1)  # not what we created
    return lambda: hand_built(order, session)


def without_intent(order: Order) -> Callable[[], None]:
    session = session_object(order, payment_intent=None)
    return lambda: hand_built(order, session)


def intent_of_another_order(order: Order) -> Callable[[], None]:
    intent_id = new_intent_id()
    other = order_build(intent_id=intent_id)
    Payment.objects.create(stripe_payment_intent_id=intent_id, order=other)
    session = session_object(order, payment_intent=intent_id)
    return lambda: hand_built(order, session)


def unpaid_intent(status: str, **overrides: Any) -> Callable[[Order], Callable[[], None]]:
    def state(order: Order) -> Callable[[], None]:
        intent_id = new_intent_id()
        session = session_object(order, payment_status="unpaid", payment_intent=intent_id)
        intent = intent_object(order, intent_id, status=status, **overrides)
        return lambda: hand_built(order, session, intent)

    return state


def intent_failed_of_another_order(order: Order) -> Callable[[], None]:
    intent_id = new_intent_id()
    other = order_build(intent_id=intent_id)
    Payment.objects.create(stripe_payment_intent_id=intent_id, order=other, processing=True)
    session = session_object(order, payment_status="unpaid", payment_intent=intent_id)
    intent = intent_object(order, intent_id, status="requires_payment_method")
    return lambda: hand_built(order, session, intent)


def expired_session_of_a_paid_order(order: Order) -> Callable[[], None]:
    hand_built(order, session_object(order))
    session = session_object(order, status="expired", payment_status="unpaid")
    return lambda: hand_built(order, session)


HAND_BUILT_STATES: dict[str, Callable[[Order], Callable[[], None]]] = {
    "foreign session (other mode)": foreign_livemode,
    "foreign session (before the id was stored)": foreign_before_stored,
    "paid session without a PaymentIntent": without_intent,
    "PaymentIntent of another order": intent_of_another_order,
    "intent succeeded, session still unpaid": unpaid_intent("succeeded"),
    "intent succeeded for another amount": unpaid_intent("succeeded", amount_received=1),
    "intent canceled": unpaid_intent("canceled", amount_received=0),
    "intent failed, another order's": intent_failed_of_another_order,
    "expired session of a paid order": expired_session_of_a_paid_order,
}


@pytest.mark.parametrize("state", HAND_BUILT_STATES)
def test_a_second_hand_built_sync_writes_nothing(demo_catalog: None, state: str) -> None:
    order = order_build()
    look = HAND_BUILT_STATES[state](order)
    look()
    before = snapshot()
    look()
    assert snapshot() == before
