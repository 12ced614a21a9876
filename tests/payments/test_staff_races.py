"""Staff actions racing the customer, Stripe's webhooks and other staff: real threads,
each with its own database connection, against the sandbox over real HTTP. Whoever
wins, the order ends one way and its stock is consistent; Stripe is asked before any
order lock is taken; and what changed while an action waited is checked again under
the lock."""

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.contrib import messages
from django.contrib.messages import get_messages
from django.db import connection, transaction
from django.test import Client

from djangomart.catalog.demo import demo_catalog_seed
from djangomart.catalog.models import StockMovement, Variant
from djangomart.core.errors import DomainError
from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order, OrderEvent
from djangomart.payments.staff import OrderNotFlagged, order_staff_accept_paid, order_staff_cancel
from tests.payments.builders import DEMO_SKU, new_session_id, order_build
from tests.payments.conftest import session_object
from tests.payments.race_helpers import held_transaction, lock_waiters_wait, order_row_locked
from tests.payments.stripe_proxy import Handler, StripeProxy
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


def _expire_then_deliver_its_event(sandbox: SandboxServer, session_id: str) -> Any:
    """A proxy rule: Stripe expires the session and its checkout.session.expired webhook
    is processed (another connection, as a worker) while the expire's answer is still on
    its way back to the staff action."""

    def rule(proxy: StripeProxy, method: str, path: str, n: int, h: Handler, body: bytes) -> bool:
        if not (method == "POST" and path.endswith("/expire")):
            return False
        expired = sandbox.client().v1.checkout.sessions.expire(session_id)
        try:
            deliver(Client(), "checkout.session.expired", expired.to_dict())
        finally:
            connection.close()
        payload = str(expired.last_response.body).encode()  # type: ignore[union-attr]
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)
        return True

    return rule


def test_accept_as_paid_survives_the_expired_event_of_its_own_expire(
    client: Client, sandbox: SandboxServer, stripe_proxy: Any
) -> None:
    """The session's expired webhook is sent the moment the accept expires it, and a
    worker may process it before the expire's answer is back: the order is paid by
    then (the accept expires only after committing paid), so that event is refused."""
    demo_catalog_seed()
    order, session_id = checkout(client)
    deliver(client, "checkout.session.completed", session_object(order, id=new_session_id()))
    stripe_proxy(_expire_then_deliver_its_event(sandbox, session_id))
    outcome = order_staff_accept_paid(order_id=order.pk, user=None, reason="Bank transfer.")
    assert (outcome.paid_by_stripe, outcome.warning) == (False, None)
    order.refresh_from_db()
    variant = Variant.objects.get(sku=DEMO_SKU)
    assert (order.status, variant.on_hand, variant.reserved) == ("paid", 498, 0)
    refused = order.events.get(kind=OrderEvent.Kind.TRANSITION_REFUSED)
    assert (refused.from_status, refused.to_status) == ("paid", "expired")
    assert sandbox.client().v1.checkout.sessions.retrieve(session_id).status == "expired"


def test_a_cancel_whose_own_expiry_event_expires_the_order_first_is_done(
    client: Client, staff_client: Client, sandbox: SandboxServer, stripe_proxy: Any
) -> None:
    """The cancel's expire makes Stripe send checkout.session.expired, processed before
    the cancel takes the lock: the order is expired, its stock released, as the cancel
    wanted. Staff are told it is done, and their reason is on the timeline."""
    demo_catalog_seed()
    order, session_id = checkout(client)
    stripe_proxy(_expire_then_deliver_its_event(sandbox, session_id))
    response = staff_client.post(
        f"/admin/orders/order/{order.pk}/cancel/", {"reason": "Customer asked."}
    )
    assert response.status_code == 302
    assert [(m.level, str(m)) for m in get_messages(response.wsgi_request)] == [
        (
            messages.SUCCESS,
            "The order's Checkout Session expired while you canceled it: the order is expired "
            "and its stock released. Your reason is on the timeline.",
        )
    ]
    order.refresh_from_db()
    variant = Variant.objects.get(sku=DEMO_SKU)
    assert (order.status, variant.on_hand, variant.reserved) == ("expired", 500, 0)
    assert not order.events.filter(kind=OrderEvent.Kind.TRANSITION_REFUSED).exists()
    note = order.events.get(kind=OrderEvent.Kind.NOTE, data__action="cancel")
    assert note.staff_user is not None
    assert note.staff_user.username == "staff"
    assert note.data["reason"] == "Customer asked."
    assert note.message.startswith("Canceled by staff: Customer asked.")


@contextmanager
def row_held_then_committed(order_id: Any, change: Callable[[], object]) -> Iterator[None]:
    """Holds the order's row lock in another connection; when the block ends, `change`
    runs in that transaction, which commits (as checkout storing its session does, or
    staff resolving the attention)."""
    locked, finish = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            with transaction.atomic():
                orders_lock([order_id])
                locked.set()
                finish.wait(30)
                change()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
        finally:
            locked.set()
            connection.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert locked.wait(10)
    try:
        yield
    finally:
        finish.set()
        thread.join(10)
    assert not errors, errors


def in_thread(work: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Runs `work` in a thread with its own connection; its result or exception lands in
    the returned list."""
    result: list[object] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # noqa: BLE001 - inspected by the test
            result.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def test_a_session_stored_while_the_cancel_waits_is_expired_before_canceling(
    client: Client, sandbox: SandboxServer
) -> None:
    """The cancel read the order before its session was stored (checkout was still
    creating it at Stripe), so there was nothing to expire; checkout stores the session
    while the cancel waits for the order's lock. The cancel looks again under the lock
    and expires that session before canceling: nobody can pay a canceled order."""
    demo_catalog_seed()
    order, session_id = checkout(client)
    Order.objects.filter(pk=order.pk).update(stripe_checkout_session_id=None)

    def store() -> None:
        Order.objects.filter(pk=order.pk).update(stripe_checkout_session_id=session_id)

    with row_held_then_committed(order.pk, store):
        thread, result = in_thread(
            lambda: order_staff_cancel(order_id=order.pk, user=None, reason="Abandoned.")
        )
        lock_waiters_wait(1)
        assert sandbox.client().v1.checkout.sessions.retrieve(session_id).status == "open"
    thread.join(30)
    assert not isinstance(result[0], BaseException), result
    order.refresh_from_db()
    assert order.status == "canceled"
    assert sandbox.client().v1.checkout.sessions.retrieve(session_id).status == "expired"


def test_accept_as_paid_checks_the_attention_again_under_the_lock(settings: Any) -> None:
    """Another staff member resolves the attention while the accept waits for the order:
    an order that no longer needs attention is not accepted."""
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # no session: no Stripe call expected
    demo_catalog_seed()
    order = order_build(with_session=False)
    Order.objects.filter(pk=order.pk).update(needs_attention=True, attention_reasons=["x"])

    def resolve() -> None:
        Order.objects.filter(pk=order.pk).update(needs_attention=False, attention_reasons=[])

    with row_held_then_committed(order.pk, resolve):
        thread, result = in_thread(
            lambda: order_staff_accept_paid(order_id=order.pk, user=None, reason="Reviewed.")
        )
        lock_waiters_wait(1)
    thread.join(30)
    assert isinstance(result[0], OrderNotFlagged), result
    order.refresh_from_db()
    variant = Variant.objects.get(sku=DEMO_SKU)
    assert (order.status, variant.reserved) == ("pending", 2)
