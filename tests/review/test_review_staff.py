"""Review of issue 7 (section 4, staff ending a stuck order): proof tests for defects in
djangomart/payments/staff.py and djangomart/orders/admin.py. Each test fails on
6d64477. Sandbox over real HTTP, or a proxy in front of it; no mock of the code under
test."""

import json
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import transaction
from django.test import Client

from djangomart.catalog.models import Variant
from djangomart.core.errors import DomainError
from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order
from djangomart.orders.services import order_flag
from djangomart.payments import gateway
from djangomart.payments.checkout import PaymentProviderUnavailable
from djangomart.payments.inbox import stripe_event_process
from djangomart.payments.staff import order_staff_accept_paid, order_staff_cancel
from tests.payments.builders import DEMO_SKU, new_session_id, order_build
from tests.payments.conftest import event_json, post_event, session_object
from tests.payments.stripe_proxy import Handler, StripeProxy
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("demo_catalog")]


def checkout(client: Client) -> tuple[Order, str]:
    response = client.post(
        "/api/v1/checkout",
        {"email": "buyer@example.com", "lines": [{"sku": DEMO_SKU, "quantity": 2}]},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    return Order.objects.get(pk=body["order"]["id"]), body["checkout_session_id"]


def stock() -> tuple[int, int]:
    variant = Variant.objects.get(sku=DEMO_SKU)
    return variant.on_hand, variant.reserved


def deliver(client: Client, event_type: str, obj: dict[str, Any]) -> None:
    """One signed event through the real webhook view, processed as the worker does."""
    payload = event_json(event_type, obj)
    assert post_event(client, payload).status_code == 200
    stripe_event_process(event_id=json.loads(payload)["id"])


def test_accept_as_paid_whose_expire_answer_was_lost_can_never_be_accepted(
    client: Client, sandbox: SandboxServer, stripe_proxy: Any, settings: Any
) -> None:
    """staff.py order_staff_accept_paid -> _session_close: Stripe expires the session but
    its answer is lost (a read timeout, a dropped connection). Staff are told "the order
    is unchanged, try again in a moment", and it is, for now. But Stripe sends
    checkout.session.expired for the session that staff's own call expired, and that
    expires the order (its stock released): staff's "try again" is refused for good
    (order_not_pending), although nothing but the accept's own Stripe call ended it.
    Money received for it (a foreign session here) is now a flagged, expired order whose
    stock was given away: the accept the runbook prescribes is impossible."""
    order, session_id = checkout(client)
    # Someone paid a Checkout Session the shop never created for this order: the
    # runbook says Accept as paid.
    deliver(client, "checkout.session.completed", session_object(order, id=new_session_id()))
    order.refresh_from_db()
    assert order.attention_reasons == ["foreign_session"]

    lose_answers = {"on": True}

    def rule(proxy: StripeProxy, method: str, path: str, n: int, h: Handler, body: bytes) -> bool:
        if not (lose_answers["on"] and method == "POST" and path.endswith("/expire")):
            return False
        # Stripe does it (the first time; a retry finds it expired); its answer never
        # comes back.
        if sandbox.client().v1.checkout.sessions.retrieve(session_id).status == "open":
            sandbox.client().v1.checkout.sessions.expire(session_id)
        h.drop_connection()
        return True

    settings.STRIPE_RETRY_BUDGET = 2.0
    settings.STRIPE_READ_TIMEOUT = 1.0
    settings.STRIPE_CONNECT_TIMEOUT = 1.0
    stripe_proxy(rule)
    with pytest.raises(PaymentProviderUnavailable, match="the order is unchanged"):
        order_staff_accept_paid(order_id=order.pk, user=None, reason="Paid by bank transfer.")
    lose_answers["on"] = False
    assert sandbox.client().v1.checkout.sessions.retrieve(session_id).status == "expired"

    # Stripe's event for the expiry staff asked for arrives.
    deliver(
        client,
        "checkout.session.expired",
        sandbox.client().v1.checkout.sessions.retrieve(session_id).to_dict(),
    )
    # "Try again in a moment."
    try:
        order_staff_accept_paid(order_id=order.pk, user=None, reason="Paid by bank transfer.")
    except DomainError as exc:
        pytest.fail(f"the retried accept is refused: {exc.code}: {exc.message}")
    order.refresh_from_db()
    assert order.status == "paid"


def test_cancel_of_an_order_whose_bank_debit_failed_is_refused_as_still_processing(
    client: Client, sandbox: SandboxServer
) -> None:
    """staff.py _session_apply passes no PaymentIntent to checkout_session_apply. Issue 7
    section 4: a complete/unpaid session is checked through its PaymentIntent, because a
    lost async_payment_failed must not hold stock. The bank debit failed at Stripe (the
    PaymentIntent is back to requires_payment_method), its webhook was lost; staff cancel
    the stuck order and are told "a delayed payment is still processing, wait for the
    bank's answer": the bank answered, the order stays pending with its stock held."""
    order, session_id = checkout(client)
    sandbox.control(f"checkout/sessions/{session_id}/pay", {"method": "delayed"})
    sandbox.control(f"checkout/sessions/{session_id}/delayed_payment", {"result": "failed"})
    intent_id = sandbox.client().v1.checkout.sessions.retrieve(session_id).payment_intent
    assert isinstance(intent_id, str)
    intent = sandbox.client().v1.payment_intents.retrieve(intent_id)
    assert intent.status == "requires_payment_method"  # Stripe knows it failed

    message = ""
    try:
        order_staff_cancel(order_id=order.pk, user=None, reason="Debit bounced, customer gone.")
    except DomainError as exc:
        message = exc.message
    order.refresh_from_db()
    assert (order.status, stock()) in {("failed", (500, 0)), ("canceled", (500, 0))}, message


def test_the_attention_proxys_change_permission_alone_lets_staff_accept_orders_as_paid(
    stripe_settings: Any,
) -> None:
    """orders/admin.py: OrderNeedingAttentionAdmin inherits the staff URLs, and
    _order_for_action checks has_change_permission of the *proxy* model. docs/payments.md:
    the buttons are "for staff with the 'Can change order' permission". A staff member
    given only "Can change order needing attention" (e.g. to work the attention list)
    can accept an order as paid (its stock sold) and cancel orders."""
    stripe_settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # no Stripe needed below
    gateway.client_reset()
    order = order_build(with_session=False)
    with transaction.atomic():
        order_flag(orders_lock([order.pk])[order.pk], "amount_mismatch")
    user = User.objects.create_user("support", "s@example.com", "pw", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_order", "change_orderneedingattention"])
    )
    assert not user.has_perm("orders.change_order")
    support = Client()
    support.force_login(user)
    response = support.post(
        f"/admin/orders/orderneedingattention/{order.pk}/accept-paid/", {"reason": "Looks ok."}
    )
    order.refresh_from_db()
    assert (response.status_code, order.status) == (403, "pending")


@pytest.mark.django_db(transaction=True)
def test_accept_as_paid_loses_to_the_expired_event_of_its_own_expire(
    sandbox: SandboxServer, stripe_proxy: Any
) -> None:
    """The same without any failure: Stripe answers the accept's expire, and its
    checkout.session.expired webhook (sent the moment the session expired) is processed
    before the accept takes the order's lock: a worker is fast, and the expire's answer
    crosses the internet. The accept then fails with order_not_pending, the order is
    expired and its stock released, and it can never be accepted. (Here the webhook is
    delivered through the real view and processed while the expire's answer is on its
    way back.)"""
    from django.db import connection

    client = Client()
    order, session_id = checkout(client)
    deliver(client, "checkout.session.completed", session_object(order, id=new_session_id()))

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

    stripe_proxy(rule)
    try:
        order_staff_accept_paid(order_id=order.pk, user=None, reason="Paid by bank transfer.")
    except DomainError as exc:
        order.refresh_from_db()
        pytest.fail(f"accept refused ({exc.code}); the order is {order.status}, stock {stock()}")
    order.refresh_from_db()
    assert order.status == "paid"
