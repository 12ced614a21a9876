"""A staff cancel racing the customer: real threads, each with its own database
connection, against the sandbox over real HTTP. Whoever wins, the order ends one way and
its stock is consistent; and Stripe is asked before any order lock is taken."""

import threading
from collections import Counter
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from djangomart.catalog.demo import demo_catalog_seed
from djangomart.catalog.models import StockMovement, Variant
from djangomart.core.errors import DomainError
from djangomart.orders.models import Order, OrderEvent
from djangomart.payments.staff import order_staff_cancel
from tests.payments.builders import DEMO_SKU
from tests.payments.race_helpers import held_transaction, lock_waiters_wait, order_row_locked
from tests.payments.test_concurrency import run_at_once
from tests.payments.test_staff_actions import PAID_CARD, checkout, deliver
from tests.stripe_sandbox.harness import ControlError, SandboxServer

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 6


def test_a_cancel_racing_the_customers_payment_and_its_webhook_ends_one_way(
    client: Client, sandbox: SandboxServer
) -> None:
    demo_catalog_seed()
    outcomes: Counter[str] = Counter()
    for round_ in range(ROUNDS):
        order, session_id = checkout(client)

        def pay(session_id: str = session_id, looks: int = round_ % 3) -> str:
            # The customer looks at the page a few times first (0 to 2 requests), so that
            # the rounds see both winners: the payment, and the cancel's expire.
            for _ in range(looks):
                sandbox.client().v1.checkout.sessions.retrieve(session_id)
            try:
                paid = sandbox.control(f"checkout/sessions/{session_id}/pay", {"card": PAID_CARD})
            except ControlError:
                return "refused"  # the session was expired first
            deliver(Client(), "checkout.session.completed", paid["checkout_session"])
            return "paid"

        def cancel(order_id: Any = order.pk) -> str:
            try:
                order_staff_cancel(order_id=order_id, user=None, reason="Race.")
            except DomainError as exc:
                return exc.code
            return "canceled"

        customer, staff = run_at_once([pay, cancel])
        order.refresh_from_db()
        at_stripe = sandbox.client().v1.checkout.sessions.retrieve(session_id).status
        if order.status == "canceled":
            assert (customer, staff, at_stripe) == ("refused", "canceled", "expired")
        else:
            assert (order.status, order.payment_status, customer) == ("paid", "paid", "paid")
            assert staff in {"checkout_session_complete", "order_not_pending"}
            assert at_stripe == "complete"
        releases = order.events.filter(kind=OrderEvent.Kind.NOTE, message="Stock released.")
        assert releases.count() == (order.status == "canceled")
        sales = StockMovement.objects.filter(order=order, reason="sale").count()
        assert sales == (order.status == "paid")
        outcomes[order.status] += 1
    variant = Variant.objects.get(sku=DEMO_SKU)
    assert (variant.on_hand, variant.reserved) == (500 - 2 * outcomes["paid"], 0)
    assert sum(outcomes.values()) == ROUNDS


def test_the_session_is_expired_at_stripe_before_the_order_lock_is_waited_for(
    client: Client, sandbox: SandboxServer
) -> None:
    """A worker holds the order (processing an event): the cancel has already expired the
    session at Stripe by the time it waits for that lock, then cancels."""
    demo_catalog_seed()
    order, session_id = checkout(client)
    errors: list[BaseException] = []

    def cancel() -> None:
        try:
            order_staff_cancel(order_id=order.pk, user=None, reason="Abandoned.")
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
        finally:
            connection.close()

    with held_transaction(order_row_locked(order.pk)):
        thread = threading.Thread(target=cancel)
        thread.start()
        lock_waiters_wait(1)
        session = sandbox.client().v1.checkout.sessions.retrieve(session_id)
        assert session.status == "expired"
        assert Order.objects.get(pk=order.pk).status == "pending"
    thread.join(30)
    assert not errors, errors
    order.refresh_from_db()
    assert order.status == "canceled"
