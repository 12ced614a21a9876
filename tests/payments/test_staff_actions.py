"""Staff end a stuck pending order from the admin (docs/payments.md, "When something needs
a human"): cancel it, with its Checkout Session expired at Stripe first (the sandbox, over
real HTTP), or accept it as paid after review, with its session expired after the order
is paid; each with a reason and the staff member on the timeline. Resolving attention
clears only the reasons the staff member saw."""

import json
import re
from typing import Any

import pytest
from django.contrib import messages
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.test import Client

from djangomart.catalog.models import StockMovement, Variant
from djangomart.orders.models import Order, OrderEvent
from djangomart.orders.services import StaffReasonInvalid
from djangomart.payments import gateway
from djangomart.payments.inbox import stripe_event_process
from djangomart.payments.models import StripeEvent
from djangomart.payments.staff import (
    CheckoutSessionComplete,
    DelayedPaymentFailed,
    OrderNotFlagged,
    OrderNotPending,
    order_staff_accept_paid,
    order_staff_cancel,
)
from tests.payments.builders import DEMO_SKU, new_session_id, order_build
from tests.payments.conftest import event_json, post_event, session_object
from tests.payments.stripe_proxy import Handler, StripeProxy
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("demo_catalog")]

PAID_CARD = "4242424242424242"


def checkout(client: Client) -> tuple[Order, str]:
    """A real checkout through the API (the sandbox creates its open session)."""
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


def deliver(client: Client, event_type: str, obj: dict[str, Any]) -> StripeEvent:
    """Posts one signed event to the webhook and processes it as the worker would."""
    payload = event_json(event_type, obj)
    assert post_event(client, payload).status_code == 200
    event_id = json.loads(payload)["id"]
    stripe_event_process(event_id=event_id)
    return StripeEvent.objects.get(pk=event_id)


def flag_foreign_session(client: Client, order: Order) -> None:
    """Someone paid a Checkout Session the shop never created, naming this order."""
    deliver(client, "checkout.session.completed", session_object(order, id=new_session_id()))
    order.refresh_from_db()
    assert "foreign_session" in order.attention_reasons


def flag_amount_mismatch(client: Client, order: Order) -> None:
    deliver(client, "checkout.session.completed", session_object(order, amount_total=1))


def session_at_stripe(sandbox: SandboxServer, session_id: str) -> Any:
    return sandbox.client().v1.checkout.sessions.retrieve(session_id)


def post(client: Client, order: Order, action: str, **data: Any) -> Any:
    return client.post(f"/admin/orders/order/{order.pk}/{action}/", data)


def texts(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def staff_user() -> User:
    return User.objects.get(username="staff")


def releases(order: Order) -> int:
    return order.events.filter(kind=OrderEvent.Kind.NOTE, message="Stock released.").count()


# -- cancel ----------------------------------------------------------------------------


def test_cancel_expires_the_open_session_at_stripe_then_cancels_and_releases_stock_once(
    client: Client, staff_client: Client, sandbox: SandboxServer
) -> None:
    order, session_id = checkout(client)
    assert stock() == (500, 2)
    response = post(staff_client, order, "cancel", reason="  Customer called: wrong size.  ")
    assert response.status_code == 302
    assert response["Location"] == f"/admin/orders/order/{order.pk}/change/"
    assert texts(response) == ["The order was canceled and its stock released."]
    order.refresh_from_db()
    assert order.status == "canceled"
    assert session_at_stripe(sandbox, session_id).status == "expired"
    assert stock() == (500, 0)
    entry = order.events.get(kind=OrderEvent.Kind.TRANSITION, to_status="canceled")
    assert entry.staff_user == staff_user()
    assert entry.message == "Canceled by staff: Customer called: wrong size."
    assert entry.data["reason"] == "Customer called: wrong size."
    # Stripe's checkout.session.expired for it arrives later: nothing is released twice.
    deliver(client, "checkout.session.expired", session_at_stripe(sandbox, session_id).to_dict())
    order.refresh_from_db()
    assert (order.status, stock(), releases(order)) == ("canceled", (500, 0), 1)


def test_cancel_when_the_customer_already_paid_at_stripe_applies_the_payment_instead(
    client: Client, staff_client: Client, sandbox: SandboxServer
) -> None:
    order, session_id = checkout(client)
    # Paid at Stripe; the webhook has not arrived (no endpoint is registered).
    sandbox.control(f"checkout/sessions/{session_id}/pay", {"card": PAID_CARD})
    response = post(staff_client, order, "cancel", reason="Looks abandoned.")
    assert response.status_code == 302
    [message] = texts(response)
    assert "already paid" in message
    assert "not canceled" in message
    order.refresh_from_db()
    assert (order.status, order.payment_status) == ("paid", "paid")
    assert stock() == (498, 0)  # sold, never released
    assert releases(order) == 0
    note = order.events.get(data__action="cancel", kind=OrderEvent.Kind.NOTE)
    assert note.staff_user == staff_user()
    assert session_at_stripe(sandbox, session_id).status == "complete"


def test_cancel_of_an_order_whose_payment_does_not_match_cancels_and_says_to_refund(
    client: Client, staff_client: Client, sandbox: SandboxServer
) -> None:
    """Paid at Stripe, but not the order's total (its price snapshot says 41.00 USD):
    that payment never pays the order, so staff can end it, and must refund."""
    order, session_id = checkout(client)
    Order.objects.filter(pk=order.pk).update(subtotal=4100, total=4100)
    sandbox.control(f"checkout/sessions/{session_id}/pay", {"card": PAID_CARD})
    response = post(staff_client, order, "cancel", reason="Price changed; refunded.")
    assert texts(response) == [
        "The order was canceled and its stock released. Stripe received 40.00 USD for it: "
        "refund it with the Refund button."
    ]
    order.refresh_from_db()
    assert (order.status, order.amount_paid, stock()) == ("canceled", 4000, (500, 0))
    assert (order.needs_attention, order.attention_reasons) == (True, ["amount_mismatch"])
    assert not order.events.filter(kind=OrderEvent.Kind.NOTE, data__action="cancel").exists()


def test_cancel_refused_by_stripe_because_the_customer_paid_between_its_two_calls(
    client: Client, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session is open when read, completed by the customer a moment later: Stripe
    refuses to expire it, and that refusal means "complete", not an error."""
    order, session_id = checkout(client)
    sessions = gateway._client().v1.checkout.sessions
    real_retrieve = sessions.retrieve
    calls: list[str | None] = []

    def retrieve_then_customer_pays(*args: Any, **kwargs: Any) -> Any:
        session = real_retrieve(*args, **kwargs)
        calls.append(session.status)
        if len(calls) == 1:
            sandbox.control(f"checkout/sessions/{session_id}/pay", {"card": PAID_CARD})
        return session

    monkeypatch.setattr(sessions, "retrieve", retrieve_then_customer_pays)
    with pytest.raises(CheckoutSessionComplete, match="already paid"):
        order_staff_cancel(order_id=order.pk, user=None, reason="Abandoned.")
    assert calls == ["open", "complete"]
    order.refresh_from_db()
    assert (order.status, stock()) == ("paid", (498, 0))


def test_cancel_after_a_delayed_payment_was_submitted_is_refused(
    client: Client, sandbox: SandboxServer
) -> None:
    order, session_id = checkout(client)
    sandbox.control(f"checkout/sessions/{session_id}/pay", {"method": "delayed"})
    with pytest.raises(CheckoutSessionComplete, match="delayed payment") as refused:
        order_staff_cancel(order_id=order.pk, user=None, reason="Abandoned.")
    assert refused.value.code == "checkout_session_complete"
    order.refresh_from_db()
    assert (order.status, order.payment_status, stock()) == ("pending", "processing", (500, 2))


def debit_failed(client: Client, sandbox: SandboxServer) -> Order:
    """A checkout whose bank debit failed at Stripe (its PaymentIntent is back to
    requires_payment_method), with every webhook about it lost: the order is pending,
    its stock held."""
    order, session_id = checkout(client)
    sandbox.control(f"checkout/sessions/{session_id}/pay", {"method": "delayed"})
    sandbox.control(f"checkout/sessions/{session_id}/delayed_payment", {"result": "failed"})
    intent_id = session_at_stripe(sandbox, session_id).payment_intent
    assert sandbox.client().v1.payment_intents.retrieve(intent_id).status == (
        "requires_payment_method"
    )
    order.refresh_from_db()
    assert (order.status, stock()) == ("pending", (500, 2))
    return order


def test_cancel_of_an_order_whose_bank_debit_failed_fails_it_and_says_so(
    client: Client, staff_client: Client, sandbox: SandboxServer
) -> None:
    """The session stays complete/unpaid after a failed debit: only its PaymentIntent
    says the bank answered, so the cancel reads it as the sync does, instead of telling
    staff to wait for an answer that came."""
    order = debit_failed(client, sandbox)
    response = post(staff_client, order, "cancel", reason="Debit bounced, customer gone.")
    assert [(m.level, str(m)) for m in get_messages(response.wsgi_request)] == [
        (
            messages.SUCCESS,
            "The order failed because the customer's bank debit failed at Stripe; its stock "
            "was released. No cancel was needed.",
        )
    ]
    order.refresh_from_db()
    assert (order.status, order.payment_status, stock(), releases(order)) == (
        "failed", "unpaid", (500, 0), 1
    )  # fmt: skip
    note = order.events.get(kind=OrderEvent.Kind.NOTE, data__action="cancel")
    assert note.staff_user == staff_user()
    assert "bank debit had failed" in note.message


def test_cancel_when_stripe_is_unreachable_changes_nothing(
    client: Client, staff_client: Client, sandbox: SandboxServer, settings: Any
) -> None:
    order, _ = checkout(client)
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens there
    settings.STRIPE_RETRY_BUDGET = 1
    gateway.client_reset()
    before = (order.status, list(order.events.values_list("pk", flat=True)))
    response = post(staff_client, order, "cancel", reason="Abandoned.")
    assert response.status_code == 302
    assert texts(response) == [
        "Stripe could not be reached to expire the Checkout Session; the order is unchanged. "
        "Try again in a moment."
    ]
    order.refresh_from_db()
    assert (order.status, list(order.events.values_list("pk", flat=True))) == before
    assert stock() == (500, 2)


@pytest.fixture
def no_stripe(stripe_settings: Any) -> Any:
    """A gateway that would fail at once if it were called."""
    stripe_settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    stripe_settings.STRIPE_RETRY_BUDGET = 1
    gateway.client_reset()
    return stripe_settings


def test_cancel_of_an_order_without_a_session_needs_no_stripe(no_stripe: Any) -> None:
    order = order_build(with_session=False)
    order_staff_cancel(order_id=order.pk, user=None, reason="Never got a session.")
    order.refresh_from_db()
    assert (order.status, stock()) == ("canceled", (500, 0))


def test_cancel_of_an_already_expired_session_cancels(
    client: Client, sandbox: SandboxServer
) -> None:
    order, session_id = checkout(client)
    sandbox.control("clock/advance", {"seconds": 90000})  # Stripe expired it; no webhook
    assert session_at_stripe(sandbox, session_id).status == "expired"
    order_staff_cancel(order_id=order.pk, user=None, reason="Stuck.")
    order.refresh_from_db()
    assert (order.status, stock()) == ("canceled", (500, 0))


def test_cancel_of_a_session_stripe_does_not_know_cancels_and_says_so(
    sandbox: SandboxServer,
) -> None:
    order = order_build()  # a session id the sandbox never issued
    order_staff_cancel(order_id=order.pk, user=None, reason="Session lost.")
    order.refresh_from_db()
    assert (order.status, stock()) == ("canceled", (500, 0))
    entry = order.events.get(kind=OrderEvent.Kind.TRANSITION)
    assert "unknown to Stripe" in entry.data["stripe"]


def test_cancel_of_an_order_that_is_not_pending_is_refused(
    client: Client, staff_client: Client, sandbox: SandboxServer
) -> None:
    order, session_id = checkout(client)
    sandbox.control(f"checkout/sessions/{session_id}/pay", {"card": PAID_CARD})
    client.post(f"/api/v1/orders/{order.pk}/sync", HTTP_X_ORDER_TOKEN=order.access_token)
    order.refresh_from_db()
    assert order.status == "paid"
    with pytest.raises(OrderNotPending) as refused:
        order_staff_cancel(order_id=order.pk, user=None, reason="Too late.")
    assert (refused.value.status, refused.value.code) == (409, "order_not_pending")
    response = post(staff_client, order, "cancel", reason="Too late.")
    assert texts(response) == ["The order is paid, not pending; nothing was changed."]
    order.refresh_from_db()
    assert (order.status, stock()) == ("paid", (498, 0))


# -- accept as paid --------------------------------------------------------------------


def test_accept_as_paid_of_a_flagged_order_sells_its_stock_and_records_who_and_why(
    client: Client, staff_client: Client, sandbox: SandboxServer
) -> None:
    order, session_id = checkout(client)
    flag_foreign_session(client, order)
    response = post(
        staff_client, order, "accept-paid", reason="Paid 40.00 USD by bank transfer, ref 1234."
    )
    assert response.status_code == 302
    assert texts(response)[0].startswith("The order was accepted as paid")
    order.refresh_from_db()
    assert order.status == "paid"
    assert stock() == (498, 0)
    sale = StockMovement.objects.get(order=order)
    assert (sale.reason, sale.delta) == ("sale", -2)
    entry = order.events.get(kind=OrderEvent.Kind.TRANSITION, to_status="paid")
    assert entry.staff_user == staff_user()
    assert entry.message == "Accepted as paid by staff: Paid 40.00 USD by bank transfer, ref 1234."
    assert entry.data["attention_reasons"] == ["foreign_session"]
    # Its own session can no longer be paid: the customer cannot pay twice.
    assert session_at_stripe(sandbox, session_id).status == "expired"
    # The flag stays until staff resolve it.
    assert (order.needs_attention, order.attention_reasons) == (True, ["foreign_session"])


def test_accept_as_paid_when_stripe_already_paid_the_order_applies_that_payment(
    client: Client, sandbox: SandboxServer
) -> None:
    order, session_id = checkout(client)
    flag_foreign_session(client, order)
    sandbox.control(f"checkout/sessions/{session_id}/pay", {"card": PAID_CARD})
    outcome = order_staff_accept_paid(order_id=order.pk, user=None, reason="Reviewed.")
    assert outcome.paid_by_stripe
    order.refresh_from_db()
    assert (order.status, order.payment_status, stock()) == ("paid", "paid", (498, 0))
    assert not order.events.filter(kind=OrderEvent.Kind.TRANSITION, staff_user__isnull=False)
    assert order.events.filter(kind=OrderEvent.Kind.NOTE, data__action="accept_paid").exists()


def test_accept_as_paid_after_an_underpayment_keeps_the_money_facts(
    client: Client, sandbox: SandboxServer
) -> None:
    order, _ = checkout(client)
    flag_amount_mismatch(client, order)
    order_staff_accept_paid(order_id=order.pk, user=None, reason="1 cent short: accepted.")
    order.refresh_from_db()
    assert (order.status, order.payment_status, order.amount_paid) == ("paid", "unpaid", 1)
    assert stock() == (498, 0)


def test_accept_as_paid_of_a_payment_stripe_holds_for_another_amount(
    client: Client, sandbox: SandboxServer
) -> None:
    order, session_id = checkout(client)
    Order.objects.filter(pk=order.pk).update(subtotal=4100, total=4100)
    sandbox.control(f"checkout/sessions/{session_id}/pay", {"card": PAID_CARD})
    client.post(f"/api/v1/orders/{order.pk}/sync", HTTP_X_ORDER_TOKEN=order.access_token)
    order.refresh_from_db()
    assert (order.status, order.attention_reasons) == ("pending", ["amount_mismatch"])
    outcome = order_staff_accept_paid(order_id=order.pk, user=None, reason="1.00 USD off: fine.")
    assert not outcome.paid_by_stripe
    order.refresh_from_db()
    assert (order.status, order.amount_paid, stock()) == ("paid", 4000, (498, 0))


def test_accept_as_paid_while_a_delayed_payment_is_processing_is_refused(
    client: Client, sandbox: SandboxServer
) -> None:
    order, session_id = checkout(client)
    flag_foreign_session(client, order)
    sandbox.control(f"checkout/sessions/{session_id}/pay", {"method": "delayed"})
    with pytest.raises(CheckoutSessionComplete, match="delayed payment"):
        order_staff_accept_paid(order_id=order.pk, user=None, reason="Reviewed.")
    order.refresh_from_db()
    assert (order.status, order.payment_status, stock()) == ("pending", "processing", (500, 2))


def test_accept_as_paid_of_an_order_that_needs_no_attention_is_refused(no_stripe: Any) -> None:
    order = order_build()
    with pytest.raises(OrderNotFlagged) as refused:
        order_staff_accept_paid(order_id=order.pk, user=None, reason="Because.")
    assert (refused.value.status, refused.value.code) == (409, "order_not_flagged")
    order.refresh_from_db()
    assert (order.status, stock()) == ("pending", (500, 2))


def test_accept_as_paid_of_an_order_that_is_not_pending_is_refused(no_stripe: Any) -> None:
    order = order_build(with_session=False)
    order_staff_cancel(order_id=order.pk, user=None, reason="Stuck.")
    Order.objects.filter(pk=order.pk).update(needs_attention=True, attention_reasons=["x"])
    with pytest.raises(OrderNotPending):
        order_staff_accept_paid(order_id=order.pk, user=None, reason="Because.")
    order.refresh_from_db()
    assert (order.status, stock()) == ("canceled", (500, 0))


def test_accept_as_paid_of_an_order_whose_bank_debit_failed_is_refused(
    client: Client, sandbox: SandboxServer
) -> None:
    order = debit_failed(client, sandbox)
    flag_foreign_session(client, order)
    with pytest.raises(DelayedPaymentFailed, match="bank debit had failed") as refused:
        order_staff_accept_paid(order_id=order.pk, user=None, reason="Reviewed.")
    assert (refused.value.status, refused.value.code) == (409, "delayed_payment_failed")
    order.refresh_from_db()
    assert (order.status, stock()) == ("failed", (500, 0))
    assert not StockMovement.objects.filter(order=order, reason="sale").exists()


def test_accept_as_paid_whose_expire_fails_stays_paid_and_warns_staff(
    client: Client, staff_client: Client, sandbox: SandboxServer, stripe_proxy: Any, settings: Any
) -> None:
    """Stripe expires the session but its answer is lost (a dropped connection): the
    order is paid already, staff are warned that the session may still be paid until it
    expires by itself, and Stripe's checkout.session.expired for it changes nothing."""
    order, session_id = checkout(client)
    flag_foreign_session(client, order)

    def rule(proxy: StripeProxy, method: str, path: str, n: int, h: Handler, body: bytes) -> bool:
        if not (method == "POST" and path.endswith("/expire")):
            return False
        if session_at_stripe(sandbox, session_id).status == "open":
            sandbox.client().v1.checkout.sessions.expire(session_id)
        h.drop_connection()
        return True

    settings.STRIPE_RETRY_BUDGET = 2.0
    settings.STRIPE_READ_TIMEOUT = 1.0
    settings.STRIPE_CONNECT_TIMEOUT = 1.0
    stripe_proxy(rule)
    response = post(staff_client, order, "accept-paid", reason="Paid by bank transfer.")
    [message] = list(get_messages(response.wsgi_request))
    assert message.level == messages.WARNING
    assert "accepted as paid, but Stripe could not expire its Checkout Session" in str(message)
    assert order.expires_at.strftime("%Y-%m-%d %H:%M UTC") in str(message)
    order.refresh_from_db()
    assert (order.status, stock()) == ("paid", (498, 0))
    entry = order.events.get(kind=OrderEvent.Kind.TRANSITION, to_status="paid")
    assert entry.staff_user == staff_user()
    # Stripe's event for the expiry that did happen arrives: paid is never lost.
    deliver(client, "checkout.session.expired", session_at_stripe(sandbox, session_id).to_dict())
    order.refresh_from_db()
    assert (order.status, stock(), releases(order)) == ("paid", (498, 0), 0)


def test_accept_as_paid_when_the_customer_pays_before_its_expire_records_and_flags_it(
    client: Client, sandbox: SandboxServer, stripe_proxy: Any
) -> None:
    """The customer completes the session between the accept's look and its expire:
    Stripe refuses the expire, and the payment is applied to the paid order, flagged
    as a second payment for staff to refund."""
    order, session_id = checkout(client)
    flag_foreign_session(client, order)

    def rule(proxy: StripeProxy, method: str, path: str, n: int, h: Handler, body: bytes) -> bool:
        if method == "POST" and path.endswith("/expire") and n == 1:
            sandbox.control(f"checkout/sessions/{session_id}/pay", {"card": PAID_CARD})
        return False

    stripe_proxy(rule)
    outcome = order_staff_accept_paid(order_id=order.pk, user=None, reason="Bank transfer.")
    assert not outcome.paid_by_stripe
    assert outcome.warning is not None
    assert "completed its Checkout Session at Stripe meanwhile (paid)" in outcome.warning
    order.refresh_from_db()
    assert (order.status, order.payment_status, order.amount_paid) == ("paid", "paid", 4000)
    assert stock() == (498, 0)  # sold once
    assert order.attention_reasons == ["foreign_session", "duplicate_payment"]
    # The webhook for that payment arrives later: recorded once, not flagged again.
    deliver(client, "checkout.session.completed", session_at_stripe(sandbox, session_id).to_dict())
    order.refresh_from_db()
    assert order.attention_reasons == ["foreign_session", "duplicate_payment"]
    assert order.events.filter(kind=OrderEvent.Kind.FLAGGED, data__reason="duplicate_payment")
    assert order.events.filter(kind=OrderEvent.Kind.FLAGGED).count() == 2


# -- reasons and permissions -----------------------------------------------------------


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501, "bad\x00reason"])
def test_a_staff_action_needs_a_reason(no_stripe: Any, reason: str) -> None:
    order = order_build(with_session=False)
    with pytest.raises(StaffReasonInvalid) as refused:
        order_staff_cancel(order_id=order.pk, user=None, reason=reason)
    assert (refused.value.status, refused.value.code) == (422, "validation_error")
    order.refresh_from_db()
    assert order.status == "pending"


@pytest.mark.parametrize("action", ["cancel", "accept-paid", "resolve"])
def test_the_forms_refuse_a_missing_reason_and_change_nothing(
    no_stripe: Any, staff_client: Client, action: str
) -> None:
    order = order_build(with_session=False)
    Order.objects.filter(pk=order.pk).update(needs_attention=True, attention_reasons=["x"])
    response = post(staff_client, order, action, reason="   ", reasons=["x"], shown=["x"],
                    seen_through=0)  # fmt: skip
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    order.refresh_from_db()
    assert (order.status, order.attention_reasons) == ("pending", ["x"])


def limited_staff(*codenames: str) -> Client:
    return limited_staff_named("viewer", *codenames)


def limited_staff_named(username: str, *codenames: str) -> Client:
    user = User.objects.create_user(username, f"{username}@example.com", "pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("action", ["cancel", "accept-paid", "resolve"])
def test_staff_actions_need_staff_with_the_change_permission(no_stripe: Any, action: str) -> None:
    order = order_build(with_session=False)
    Order.objects.filter(pk=order.pk).update(needs_attention=True, attention_reasons=["x"])
    data = {"reason": "Because.", "reasons": ["x"], "shown": ["x"], "seen_through": 0}
    anonymous = post(Client(), order, action, **data)
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/admin/login/")
    customer = Client()
    customer.force_login(User.objects.create_user("customer", "c@example.com", "pw"))
    assert post(customer, order, action, **data)["Location"].startswith("/admin/login/")
    viewer = limited_staff("view_order")
    assert viewer.get(f"/admin/orders/order/{order.pk}/{action}/").status_code == 403
    assert post(viewer, order, action, **data).status_code == 403
    order.refresh_from_db()
    assert (order.status, order.attention_reasons) == ("pending", ["x"])


def test_staff_actions_are_csrf_protected(no_stripe: Any) -> None:
    order = order_build(with_session=False)
    user = User.objects.create_superuser("boss", "boss@example.com", "pw")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = post(client, order, "cancel", reason="Because.")
    assert response.status_code == 403
    order.refresh_from_db()
    assert order.status == "pending"


@pytest.mark.parametrize("action", ["cancel", "accept-paid", "resolve"])
def test_the_attention_lists_change_permission_alone_allows_no_staff_action(
    no_stripe: Any, action: str
) -> None:
    """ "Can change order needing attention" (the proxy model, to work the attention
    list) is not "Can change order": the actions change the Order, whichever admin's
    URL is used."""
    order = order_build(with_session=False)
    Order.objects.filter(pk=order.pk).update(needs_attention=True, attention_reasons=["x"])
    data = {"reason": "Because.", "reasons": ["x"], "shown": ["x"], "seen_through": 0}
    support = limited_staff(
        "view_order", "view_orderneedingattention", "change_orderneedingattention"
    )
    attention = f"/admin/orders/orderneedingattention/{order.pk}"
    assert support.get(f"{attention}/{action}/").status_code == 403
    assert support.post(f"{attention}/{action}/", data).status_code == 403
    assert post(support, order, action, **data).status_code == 403
    page = support.get(f"{attention}/change/").content.decode()
    assert f'href="{attention}/{action}/"' not in page
    order.refresh_from_db()
    assert (order.status, order.attention_reasons) == ("pending", ["x"])
    # The Order's own permission is what counts, through the attention list's URL too.
    staff = limited_staff_named("worker", "change_order", "view_orderneedingattention")
    assert staff.post(f"{attention}/{action}/", data).status_code == 302
    order.refresh_from_db()
    assert (order.status, order.attention_reasons) != ("pending", ["x"])


def test_the_attention_lists_change_permission_alone_allows_no_bulk_resolve(
    client: Client, stripe_settings: Any
) -> None:
    order = order_build()
    flag_amount_mismatch(client, order)
    support = limited_staff(
        "view_order", "view_orderneedingattention", "change_orderneedingattention"
    )
    page = support.get("/admin/orders/orderneedingattention/").content.decode()
    assert 'value="attention_resolve"' not in page
    support.post(
        "/admin/orders/orderneedingattention/",
        {"action": "attention_resolve", "_selected_action": [str(order.pk)], "post": "yes",
         f"reasons-{order.pk}": ["amount_mismatch"], "reason": "x"},
    )  # fmt: skip
    order.refresh_from_db()
    assert order.attention_reasons == ["amount_mismatch"]


@pytest.mark.parametrize("action", ["cancel", "accept-paid", "resolve"])
def test_staff_actions_refuse_a_get_with_query_parameters(
    no_stripe: Any, staff_client: Client, action: str
) -> None:
    """Only a POST acts (CSRF-checked): a link with the form's fields in its query string,
    opened by staff who may act, only shows the confirmation page."""
    order = order_build(with_session=False)
    Order.objects.filter(pk=order.pk).update(needs_attention=True, attention_reasons=["x"])
    before = list(order.events.values_list("pk", flat=True))
    query = "reason=Because.&reasons=x&shown=x&seen_through=999999"
    response = staff_client.get(f"/admin/orders/order/{order.pk}/{action}/?{query}")
    assert response.status_code == 200
    assert texts(response) == []
    order.refresh_from_db()
    assert (order.status, order.attention_reasons) == ("pending", ["x"])
    assert list(order.events.values_list("pk", flat=True)) == before


def links(page: str) -> set[str]:
    return set(re.findall(r'href="(/admin/orders/order/[^"]+/(?:cancel|accept-paid|resolve)/)"',
                          page))  # fmt: skip


def test_the_order_page_offers_only_the_actions_that_apply(
    no_stripe: Any, staff_client: Client
) -> None:
    order = order_build(with_session=False)
    base = f"/admin/orders/order/{order.pk}"
    page = staff_client.get(f"{base}/change/").content.decode()
    assert links(page) == {f"{base}/cancel/"}
    assert 'title="The order does not need attention."' in page
    Order.objects.filter(pk=order.pk).update(needs_attention=True, attention_reasons=["x"])
    page = staff_client.get(f"{base}/change/").content.decode()
    assert links(page) == {f"{base}/cancel/", f"{base}/accept-paid/", f"{base}/resolve/"}
    order_staff_cancel(order_id=order.pk, user=None, reason="Stuck.")
    page = staff_client.get(f"{base}/change/").content.decode()
    assert links(page) == {f"{base}/resolve/"}
    assert 'title="The order is canceled, not pending."' in page
    # The attention list's order page links to its own forms.
    attention = f"/admin/orders/orderneedingattention/{order.pk}"
    page = staff_client.get(f"{attention}/change/").content.decode()
    assert f'href="{attention}/resolve/"' in page
    # Staff who may only look get no buttons.
    viewer = limited_staff("view_order")
    assert links(viewer.get(f"{base}/change/").content.decode()) == set()


def test_the_timeline_shows_who_acted(no_stripe: Any, staff_client: Client) -> None:
    order = order_build(with_session=False)
    post(staff_client, order, "cancel", reason="Customer asked.")
    page = staff_client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert re.search(r'<td class="field-staff_user">\s*(<p>)?\s*(<a [^>]*>)?staff', page)


# -- resolving attention ---------------------------------------------------------------


def form_fields(page: str) -> dict[str, list[str]]:
    """What the rendered form would submit: hidden inputs and ticked checkboxes."""
    fields: dict[str, list[str]] = {}
    for tag in re.findall(r"<input [^>]*>", page):
        name = re.search(r'name="([^"]+)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        kind = re.search(r'type="([^"]+)"', tag)
        if not (name and value and kind) or name.group(1) == "csrfmiddlewaretoken":
            continue
        if kind.group(1) == "hidden" or (kind.group(1) == "checkbox" and "checked" in tag):
            fields.setdefault(name.group(1), []).append(value.group(1))
    return fields


def test_resolving_clears_only_the_reasons_shown_when_the_page_was_rendered(
    client: Client, staff_client: Client, stripe_settings: Any
) -> None:
    order = order_build()
    flag_amount_mismatch(client, order)
    page = staff_client.get(f"/admin/orders/order/{order.pk}/resolve/").content.decode()
    fields = form_fields(page)
    assert fields["reasons"] == ["amount_mismatch"]
    # While the staff member reads the page, someone pays a session the shop never made.
    flag_foreign_session_after = session_object(order, id=new_session_id())
    deliver(client, "checkout.session.completed", flag_foreign_session_after)
    response = post(staff_client, order, "resolve", reason="Refunded the 0.01 USD.", **fields)
    assert response.status_code == 302
    assert texts(response) == [
        f"Order {order.pk}: resolved amount_mismatch; still needs attention: foreign_session"
    ]
    order.refresh_from_db()
    assert (order.needs_attention, order.attention_reasons) == (True, ["foreign_session"])
    note = order.events.get(data__note="Refunded the 0.01 USD.")
    assert note.staff_user == staff_user()
    assert note.data["reasons"] == ["amount_mismatch"]
    assert note.data["remaining"] == ["foreign_session"]


def test_a_reason_flagged_again_after_the_page_was_rendered_stays(
    client: Client, staff_client: Client, stripe_settings: Any
) -> None:
    order = order_build()
    flag_amount_mismatch(client, order)
    page = staff_client.get(f"/admin/orders/order/{order.pk}/resolve/").content.decode()
    fields = form_fields(page)
    flag_amount_mismatch(client, order)  # another Stripe event with the same problem
    response = post(staff_client, order, "resolve", reason="Handled the first one.", **fields)
    assert response.status_code == 302
    assert texts(response) == [
        f"Order {order.pk}: nothing cleared; what you saw was flagged again or resolved after "
        "the page was shown. Still needs attention: amount_mismatch"
    ]
    order.refresh_from_db()
    assert (order.needs_attention, order.attention_reasons) == (True, ["amount_mismatch"])


def test_an_unticked_reason_is_not_cleared(
    client: Client, staff_client: Client, stripe_settings: Any
) -> None:
    order = order_build()
    flag_amount_mismatch(client, order)
    flag_foreign_session(client, order)
    page = staff_client.get(f"/admin/orders/order/{order.pk}/resolve/").content.decode()
    fields = form_fields(page)
    fields["reasons"] = ["foreign_session"]
    post(staff_client, order, "resolve", reason="Foreign session checked.", **fields)
    order.refresh_from_db()
    assert (order.needs_attention, order.attention_reasons) == (True, ["amount_mismatch"])


def test_the_bulk_action_asks_first_then_clears_only_the_reasons_it_listed(
    client: Client, staff_client: Client, stripe_settings: Any
) -> None:
    first, second = order_build(), order_build()
    flag_amount_mismatch(client, first)
    flag_amount_mismatch(client, second)
    selected = {"action": "attention_resolve", "_selected_action": [str(first.pk), str(second.pk)]}
    confirmation = staff_client.post("/admin/orders/order/", selected)
    # Nothing is cleared by the selection alone: a page lists what will be.
    assert confirmation.status_code == 200
    assert Order.objects.filter(needs_attention=True).count() == 2
    fields = form_fields(confirmation.content.decode())
    assert fields[f"reasons-{first.pk}"] == ["amount_mismatch"]
    flag_foreign_session(client, first)  # raised while the page is open
    response = staff_client.post("/admin/orders/order/", {**fields, "reason": "Refunded both."})
    assert response.status_code == 302
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.needs_attention, first.attention_reasons) == (True, ["foreign_session"])
    assert (second.needs_attention, second.attention_reasons) == (False, [])
    assert second.events.get(data__note="Refunded both.").staff_user == staff_user()


def test_the_bulk_action_needs_a_note(
    client: Client, staff_client: Client, stripe_settings: Any
) -> None:
    order = order_build()
    flag_amount_mismatch(client, order)
    selected = {"action": "attention_resolve", "_selected_action": [str(order.pk)]}
    fields = form_fields(staff_client.post("/admin/orders/order/", selected).content.decode())
    response = staff_client.post("/admin/orders/order/", {**fields, "reason": " "})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    order.refresh_from_db()
    assert order.attention_reasons == ["amount_mismatch"]


def test_the_bulk_action_needs_the_change_permission(client: Client, stripe_settings: Any) -> None:
    order = order_build()
    flag_amount_mismatch(client, order)
    viewer = limited_staff("view_order")
    page = viewer.get("/admin/orders/order/").content.decode()
    assert 'value="attention_resolve"' not in page
    viewer.post(
        "/admin/orders/order/",
        {"action": "attention_resolve", "_selected_action": [str(order.pk)], "post": "yes",
         f"reasons-{order.pk}": ["amount_mismatch"], "reason": "x"},
    )  # fmt: skip
    order.refresh_from_db()
    assert order.needs_attention


def test_forged_form_values_are_refused_not_server_errors(
    client: Client, staff_client: Client, stripe_settings: Any
) -> None:
    order = order_build()
    flag_amount_mismatch(client, order)
    huge = "9" * 30
    response = post(staff_client, order, "resolve", reason="x", reasons=["amount_mismatch"],
                    shown=["amount_mismatch", "bad\x00code"], seen_through=huge)  # fmt: skip
    assert response.status_code == 200  # the form again, with its errors
    response = staff_client.post(
        "/admin/orders/order/",
        {"action": "attention_resolve", "_selected_action": [str(order.pk)], "post": "yes",
         f"reasons-{order.pk}": ["amount_mismatch"], f"seen-{order.pk}": huge, "reason": "x"},
    )  # fmt: skip
    assert response.status_code == 302
    order.refresh_from_db()
    # The number is only what this staff member's own form claims to have seen.
    assert order.attention_reasons == []
