"""The payment flows the sandbox plays and the events they emit, as a shop receives them:
every webhook here reaches a real endpoint that verifies its signature with the SDK."""

import json
import time
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import pytest
import requests
import stripe

from tests.stripe_sandbox.harness import ControlError, Receiver, SandboxServer, session_params

SUCCESS = "4242424242424242"
GENERIC_DECLINE = "4000000000000002"
INSUFFICIENT_FUNDS = "4000000000009995"
THREE_D_SECURE = "4000002500003155"

DECLINES = [
    pytest.param(GENERIC_DECLINE, "generic_decline", "Your card was declined.", id="generic"),
    pytest.param(
        INSUFFICIENT_FUNDS,
        "insufficient_funds",
        "Your card has insufficient funds.",
        id="insufficient_funds",
    ),
]

PAID_EVENTS = [
    "payment_intent.created",
    "charge.succeeded",
    "payment_intent.succeeded",
    "checkout.session.completed",
]

# The events the issue lists: every_flow() below makes each of them fire.
EVERY_EVENT_TYPE = {
    "payment_intent.created",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.succeeded",
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "charge.refunded",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
}

SESSION_METADATA = {"order_id": "ord_42", "set_on": "session"}
INTENT_METADATA = {"order_id": "ord_42", "set_on": "payment_intent_data"}

TIMES = "\N{MULTIPLICATION SIGN}"  # the page's &times; between an item and its quantity

Event = dict[str, Any]


@dataclass
class Shop:
    """A shop's view of the sandbox: the SDK, the scripted routes and its webhook endpoint."""

    sandbox: SandboxServer
    receiver: Receiver
    client: stripe.StripeClient

    def open_session(self, **overrides: Any) -> stripe.checkout.Session:
        return self.client.v1.checkout.sessions.create(params=session_params(**overrides))

    def pay(self, session_id: str, **body: Any) -> dict[str, Any]:
        return self.sandbox.control(f"checkout/sessions/{session_id}/pay", body)  # type: ignore[no-any-return]

    def authenticate(self, session_id: str, result: str) -> dict[str, Any]:
        path = f"checkout/sessions/{session_id}/authenticate"
        return self.sandbox.control(path, {"result": result})  # type: ignore[no-any-return]

    def settle_delayed(self, session_id: str, result: str) -> dict[str, Any]:
        path = f"checkout/sessions/{session_id}/delayed_payment"
        return self.sandbox.control(path, {"result": result})  # type: ignore[no-any-return]

    def paid_session(self, **overrides: Any) -> tuple[str, dict[str, Any]]:
        """A session paid with the success card: its id and its payment intent."""
        session = self.open_session(**overrides)
        return session.id, self.pay(session.id, card=SUCCESS)["payment_intent"]

    def session(self, session_id: str) -> stripe.checkout.Session:
        return self.client.v1.checkout.sessions.retrieve(session_id)

    def delivered(self) -> list[Event]:
        """Every event the endpoint received once deliveries are idle, in arrival order.
        Each one passed stripe.Webhook.construct_event."""
        self.sandbox.wait_idle()
        assert self.receiver.bad_signatures == 0
        return [json.loads(r.payload) for r in self.receiver.received]

    def delivered_types(self) -> list[str]:
        return [event["type"] for event in self.delivered()]

    def emitted(self) -> list[Event]:
        """Every event the sandbox lists through the SDK, oldest first."""
        listed = self.client.v1.events.list(params={"limit": 100}).auto_paging_iter()
        return [event.to_dict() for event in reversed(list(listed))]

    def emitted_types(self) -> list[str]:
        return [event["type"] for event in self.emitted()]


@pytest.fixture
def shop(sandbox: SandboxServer, receiver: Receiver) -> Shop:
    return Shop(sandbox, receiver, sandbox.client())


def objects_of(events: list[Event], event_type: str) -> list[dict[str, Any]]:
    return [event["data"]["object"] for event in events if event["type"] == event_type]


def only_object(events: list[Event], event_type: str) -> dict[str, Any]:
    found = objects_of(events, event_type)
    assert len(found) == 1, f"expected one {event_type}, got {len(found)}"
    return found[0]


def types_after(events: list[Event], count: int) -> list[str]:
    return [event["type"] for event in events[count:]]


# -- The hosted page, driven by plain HTTP form posts --------------------------------------


class Page(HTMLParser):
    """What a test reads from the hosted page: table rows, links, forms and buttons, text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.links: list[str] = []
        self.forms: list[str] = []
        self.buttons: list[tuple[str, str]] = []
        self.inputs: list[str] = []
        self.alerts: list[str] = []
        self._chunks: list[str] = []
        self._cell: list[str] | None = None
        self._in_alert = False
        self.feed(html)
        self.close()
        self.text = " ".join(" ".join(self._chunks).split())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {name: value or "" for name, value in attrs}
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell = []
        elif tag == "a":
            self.links.append(attr.get("href", ""))
        elif tag == "form":
            self.forms.append(attr.get("action", ""))
        elif tag == "button":
            self.buttons.append((attr.get("name", ""), attr.get("value", "")))
        elif tag == "input":
            self.inputs.append(attr.get("name", ""))
        elif attr.get("role") == "alert":
            self._in_alert = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        self._in_alert = False

    def handle_data(self, data: str) -> None:
        self._chunks.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._in_alert:
            self.alerts.append(data.strip())


def get_page(url: str) -> tuple[int, Page]:
    response = requests.get(url, allow_redirects=False, timeout=10)
    return response.status_code, Page(response.text)


def post_form(url: str, **fields: str) -> requests.Response:
    return requests.post(url, data=fields, allow_redirects=False, timeout=10)


def pay_on_page(session: stripe.checkout.Session, card: str) -> requests.Response:
    assert session.url is not None
    return post_form(session.url, email="page@example.com", card_number=card, action="card")


def expected_success_url(session_id: str) -> str:
    return f"http://shop.test/success?session_id={session_id}"


# -- Test cards through the scripted route -----------------------------------------------


def test_the_success_card_emits_intent_created_charge_succeeded_intent_succeeded_and_completed(
    shop: Shop,
) -> None:
    shop.paid_session()
    assert shop.emitted_types() == PAID_EVENTS
    assert sorted(shop.delivered_types()) == sorted(PAID_EVENTS)


def test_the_success_card_completes_the_session_as_paid(shop: Shop) -> None:
    session_id, intent = shop.paid_session()
    completed = only_object(shop.delivered(), "checkout.session.completed")
    assert (completed["id"], completed["status"], completed["payment_status"]) == (
        session_id,
        "complete",
        "paid",
    )
    session = shop.session(session_id)
    assert (session.status, session.payment_status, session.payment_intent) == (
        "complete",
        "paid",
        intent["id"],
    )
    assert intent["status"] == "succeeded"


@pytest.mark.parametrize(("card", "decline_code", "message"), DECLINES)
def test_a_declined_card_emits_payment_failed_with_its_decline_code(
    shop: Shop, card: str, decline_code: str, message: str
) -> None:
    session = shop.open_session()
    assert shop.pay(session.id, card=card)["outcome"] == "declined"
    failed = only_object(shop.delivered(), "payment_intent.payment_failed")
    error = failed["last_payment_error"]
    assert (error["code"], error["decline_code"], error["message"]) == (
        "card_declined",
        decline_code,
        message,
    )
    assert failed["status"] == "requires_payment_method"
    assert shop.emitted_types() == [
        "payment_intent.created",
        "charge.failed",
        "payment_intent.payment_failed",
    ]


@pytest.mark.parametrize(("card", "decline_code", "message"), DECLINES)
def test_a_declined_card_leaves_the_session_open_and_unpaid(
    shop: Shop, card: str, decline_code: str, message: str
) -> None:
    session = shop.open_session()
    shop.pay(session.id, card=card)
    after = shop.session(session.id)
    assert (after.status, after.payment_status) == ("open", "unpaid")
    assert "checkout.session.completed" not in shop.delivered_types()


@pytest.mark.parametrize(("card", "decline_code", "message"), DECLINES)
def test_retrying_with_the_success_card_after_a_decline_pays_the_same_payment_intent(
    shop: Shop, card: str, decline_code: str, message: str
) -> None:
    session = shop.open_session()
    declined = shop.pay(session.id, card=card)["payment_intent"]
    paid = shop.pay(session.id, card=SUCCESS)
    assert paid["outcome"] == "succeeded"
    assert paid["payment_intent"]["id"] == declined["id"]
    assert paid["payment_intent"]["last_payment_error"] is None
    events = shop.delivered()
    assert len(objects_of(events, "payment_intent.created")) == 1
    assert only_object(events, "payment_intent.succeeded")["id"] == declined["id"]
    assert only_object(events, "checkout.session.completed")["payment_status"] == "paid"


def test_the_3ds_card_asks_for_authentication_and_charges_nothing_yet(shop: Shop) -> None:
    session = shop.open_session()
    result = shop.pay(session.id, card=THREE_D_SECURE)
    assert result["outcome"] == "requires_action"
    assert result["checkout_session"]["status"] == "open"
    assert shop.emitted_types() == ["payment_intent.created", "payment_intent.requires_action"]
    action = only_object(shop.delivered(), "payment_intent.requires_action")
    assert action["status"] == "requires_action"
    assert action["next_action"]["type"] == "use_stripe_sdk"


def test_approving_3ds_pays_the_session(shop: Shop) -> None:
    session = shop.open_session()
    intent = shop.pay(session.id, card=THREE_D_SECURE)["payment_intent"]
    result = shop.authenticate(session.id, "approve")
    assert result["outcome"] == "succeeded"
    assert result["payment_intent"]["id"] == intent["id"]
    assert result["payment_intent"]["next_action"] is None
    events = shop.delivered()
    assert types_after(shop.emitted(), 2) == PAID_EVENTS[1:]
    assert only_object(events, "checkout.session.completed")["payment_status"] == "paid"
    charge = only_object(events, "charge.succeeded")
    assert charge["payment_method_details"]["card"]["last4"] == "3155"


def test_failing_3ds_emits_authentication_failure_and_keeps_the_session_open(shop: Shop) -> None:
    session = shop.open_session()
    shop.pay(session.id, card=THREE_D_SECURE)
    assert shop.authenticate(session.id, "fail")["outcome"] == "declined"
    failed = only_object(shop.delivered(), "payment_intent.payment_failed")
    assert failed["last_payment_error"]["code"] == "payment_intent_authentication_failure"
    assert failed["status"] == "requires_payment_method"
    assert shop.session(session.id).status == "open"
    assert "checkout.session.completed" not in shop.delivered_types()


def test_switching_to_a_delayed_method_after_an_unfinished_3ds_step_clears_next_action(
    shop: Shop,
) -> None:
    session = shop.open_session()
    shop.pay(session.id, card=THREE_D_SECURE)
    intent = shop.pay(session.id, method="delayed")["payment_intent"]
    assert (intent["status"], intent["next_action"]) == ("processing", None)
    processing = only_object(shop.delivered(), "payment_intent.processing")
    assert processing["next_action"] is None


def test_authenticating_without_a_3ds_step_is_refused(shop: Shop) -> None:
    session = shop.open_session()
    with pytest.raises(ControlError) as refused:
        shop.authenticate(session.id, "approve")
    assert refused.value.status == 400
    assert refused.value.body["error"]["code"] == "payment_intent_unexpected_state"


# -- Delayed payment methods ---------------------------------------------------------------


def test_a_delayed_method_completes_the_session_unpaid_while_the_intent_processes(
    shop: Shop,
) -> None:
    session = shop.open_session()
    result = shop.pay(session.id, method="delayed")
    assert result["outcome"] == "processing"
    assert result["payment_intent"]["status"] == "processing"
    events = shop.delivered()
    completed = only_object(events, "checkout.session.completed")
    assert (completed["status"], completed["payment_status"]) == ("complete", "unpaid")
    assert only_object(events, "payment_intent.processing")["status"] == "processing"
    assert "charge.succeeded" not in shop.delivered_types()


def test_a_delayed_payment_that_succeeds_sends_async_payment_succeeded_and_intent_succeeded(
    shop: Shop,
) -> None:
    session = shop.open_session()
    shop.pay(session.id, method="delayed")
    before = len(shop.emitted())
    assert shop.settle_delayed(session.id, "succeeded")["outcome"] == "succeeded"
    assert types_after(shop.emitted(), before) == [
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.async_payment_succeeded",
    ]
    events = shop.delivered()
    settled = only_object(events, "checkout.session.async_payment_succeeded")
    assert (settled["status"], settled["payment_status"]) == ("complete", "paid")
    assert only_object(events, "payment_intent.succeeded")["status"] == "succeeded"
    assert len(objects_of(events, "checkout.session.completed")) == 1


def test_a_delayed_payment_that_fails_sends_async_payment_failed(shop: Shop) -> None:
    session = shop.open_session()
    shop.pay(session.id, method="delayed")
    before = len(shop.emitted())
    assert shop.settle_delayed(session.id, "failed")["outcome"] == "failed"
    assert types_after(shop.emitted(), before) == [
        "charge.failed",
        "payment_intent.payment_failed",
        "checkout.session.async_payment_failed",
    ]
    failed = only_object(shop.delivered(), "checkout.session.async_payment_failed")
    assert (failed["id"], failed["payment_status"]) == (session.id, "unpaid")


@pytest.mark.parametrize("result", [None, "succeeded", "failed"])
def test_a_delayed_payment_s_intent_reads_through_the_api_as_on_stripe(
    shop: Shop, result: str | None
) -> None:
    # What the shop's sync reads when the async_payment_* webhook was lost: the session
    # stays complete (and unpaid unless the debit succeeded) while its PaymentIntent
    # says processing, succeeded or requires_payment_method.
    session = shop.open_session()
    shop.pay(session.id, method="delayed")
    if result:
        shop.settle_delayed(session.id, result)
    read = shop.session(session.id)
    intent = shop.client.v1.payment_intents.retrieve(str(read.payment_intent)).to_dict()
    assert (intent["id"], intent["metadata"], intent["livemode"], intent["currency"]) == (
        read.payment_intent,
        {"order_id": "ord_123"},  # payment_intent_data.metadata
        False,
        "usd",
    )
    assert intent["amount"] == read.amount_total == 5000
    expected = {
        None: ("unpaid", "processing", 0, False),
        "succeeded": ("paid", "succeeded", 5000, False),
        "failed": ("unpaid", "requires_payment_method", 0, True),
    }[result]
    assert (
        read.status,
        read.payment_status,
        intent["status"],
        intent["amount_received"],
        intent["last_payment_error"] is not None,
    ) == ("complete", *expected)
    assert intent["processing"] is None  # Stripe's `processing` is for cards only
    if result == "failed":
        error = intent["last_payment_error"]
        assert (error["code"], intent["payment_method"]) == ("insufficient_funds", None)
        assert error["payment_method"]["type"] == "us_bank_account"
        failed_charge = shop.client.v1.charges.retrieve(intent["latest_charge"])
        assert (failed_charge.status, failed_charge.payment_intent) == ("failed", intent["id"])


def test_a_delayed_payment_can_be_settled_only_once(shop: Shop) -> None:
    session = shop.open_session()
    shop.pay(session.id, method="delayed")
    shop.settle_delayed(session.id, "succeeded")
    with pytest.raises(ControlError) as refused:
        shop.settle_delayed(session.id, "failed")
    assert refused.value.status == 400


# -- The hosted Checkout page ----------------------------------------------------------------


def test_the_hosted_page_shows_each_line_item_and_the_total(shop: Shop) -> None:
    session = shop.open_session()
    assert session.url is not None
    status, page = get_page(session.url)
    assert status == 200
    assert page.rows == [
        [f"Ceramic Mug {TIMES} 2", "30.00 USD"],
        [f"Classic Tee {TIMES} 1", "20.00 USD"],
        ["Total", "50.00 USD"],
    ]
    assert {"email", "card_number"} <= set(page.inputs)
    assert {("action", "card"), ("action", "delayed")} <= set(page.buttons)


def test_the_hosted_page_cancel_link_points_at_cancel_url(shop: Shop) -> None:
    session = shop.open_session()
    assert session.url is not None
    assert "http://shop.test/cancel" in get_page(session.url)[1].links


def test_the_success_card_on_the_page_redirects_to_success_url_with_the_session_id(
    shop: Shop,
) -> None:
    session = shop.open_session()
    response = pay_on_page(session, SUCCESS)
    assert response.status_code == 303
    assert response.headers["Location"] == expected_success_url(session.id)
    completed = only_object(shop.delivered(), "checkout.session.completed")
    assert (completed["id"], completed["payment_status"]) == (session.id, "paid")
    assert completed["customer_details"]["email"] == "page@example.com"


@pytest.mark.parametrize(("card", "decline_code", "message"), DECLINES)
def test_a_declined_card_on_the_page_answers_402_with_the_decline_message(
    shop: Shop, card: str, decline_code: str, message: str
) -> None:
    session = shop.open_session()
    response = pay_on_page(session, card)
    assert response.status_code == 402
    assert Page(response.text).alerts == [message]
    assert shop.session(session.id).status == "open"
    failed = only_object(shop.delivered(), "payment_intent.payment_failed")
    assert failed["last_payment_error"]["decline_code"] == decline_code


def test_an_unknown_card_number_on_the_page_answers_402_and_creates_no_payment_intent(
    shop: Shop,
) -> None:
    session = shop.open_session()
    response = pay_on_page(session, "1234 5678 9012 3456")
    assert response.status_code == 402
    assert Page(response.text).alerts == ["Your card number is incorrect."]
    assert shop.session(session.id).payment_intent is None
    assert shop.emitted() == []


def test_the_3ds_card_on_the_page_redirects_to_a_form_offering_approve_and_fail(
    shop: Shop,
) -> None:
    session = shop.open_session()
    response = pay_on_page(session, THREE_D_SECURE)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/checkout/pay/{session.id}/authenticate"
    assert session.url is not None
    status, page = get_page(urljoin(session.url, response.headers["Location"]))
    assert status == 200
    assert page.forms == [f"/checkout/pay/{session.id}/authenticate"]
    assert set(page.buttons) == {("result", "approve"), ("result", "fail")}
    assert "50.00 USD" in page.text


def authenticate_on_page(session: stripe.checkout.Session, result: str) -> requests.Response:
    assert pay_on_page(session, THREE_D_SECURE).status_code == 303
    assert session.url is not None
    return post_form(f"{session.url}/authenticate", result=result)


def test_approving_3ds_on_the_page_redirects_to_success_url(shop: Shop) -> None:
    session = shop.open_session()
    response = authenticate_on_page(session, "approve")
    assert response.status_code == 303
    assert response.headers["Location"] == expected_success_url(session.id)
    assert shop.session(session.id).payment_status == "paid"


def test_failing_3ds_on_the_page_answers_402_and_keeps_the_session_open(shop: Shop) -> None:
    session = shop.open_session()
    response = authenticate_on_page(session, "fail")
    assert response.status_code == 402
    assert Page(response.text).alerts == ["Authentication failed. Try another card."]
    assert shop.session(session.id).status == "open"
    failed = only_object(shop.delivered(), "payment_intent.payment_failed")
    assert failed["last_payment_error"]["code"] == "payment_intent_authentication_failure"


def test_the_delayed_method_on_the_page_redirects_to_success_url_with_the_session_unpaid(
    shop: Shop,
) -> None:
    session = shop.open_session()
    assert session.url is not None
    response = post_form(session.url, email="page@example.com", card_number="", action="delayed")
    assert response.status_code == 303
    assert response.headers["Location"] == expected_success_url(session.id)
    after = shop.session(session.id)
    assert (after.status, after.payment_status) == ("complete", "unpaid")


def test_a_completed_sessions_page_says_so_and_takes_no_second_payment(shop: Shop) -> None:
    session = shop.open_session()
    pay_on_page(session, SUCCESS)
    assert session.url is not None
    status, page = get_page(session.url)
    assert status == 200
    assert "This checkout is complete." in page.text
    assert page.links == [expected_success_url(session.id)]
    again = pay_on_page(session, SUCCESS)
    assert (again.status_code, Page(again.text).forms) == (200, [])
    assert len(objects_of(shop.delivered(), "charge.succeeded")) == 1


def test_an_expired_sessions_page_answers_410(shop: Shop) -> None:
    session = shop.open_session()
    shop.client.v1.checkout.sessions.expire(session.id)
    assert session.url is not None
    status, page = get_page(session.url)
    assert status == 410
    assert "This checkout session has expired." in page.text
    assert page.forms == []


# -- Metadata, where Stripe carries it ------------------------------------------------------


def everything_on_one_order(shop: Shop) -> list[Event]:
    """A decline, a paid retry and a partial refund on one order's session."""
    session = shop.open_session(
        metadata=SESSION_METADATA, payment_intent_data={"metadata": INTENT_METADATA}
    )
    shop.pay(session.id, card=GENERIC_DECLINE)
    intent = shop.pay(session.id, card=SUCCESS)["payment_intent"]
    shop.client.v1.refunds.create(params={"payment_intent": intent["id"], "amount": 500})
    return shop.delivered()


def test_session_events_carry_the_session_metadata(shop: Shop) -> None:
    events = everything_on_one_order(shop)
    sessions = [e["data"]["object"] for e in events if e["type"].startswith("checkout.session.")]
    assert sessions
    assert all(s["metadata"] == SESSION_METADATA for s in sessions)


def test_payment_intent_and_charge_events_carry_payment_intent_data_metadata(
    shop: Shop,
) -> None:
    events = everything_on_one_order(shop)
    carried = {
        e["type"]: e["data"]["object"]["metadata"]
        for e in events
        if e["type"].startswith(("payment_intent.", "charge."))
    }
    assert set(carried) == {
        "payment_intent.created",
        "payment_intent.payment_failed",
        "payment_intent.succeeded",
        "charge.failed",
        "charge.succeeded",
        "charge.refunded",
    }
    assert all(metadata == INTENT_METADATA for metadata in carried.values())


# -- Expiry ----------------------------------------------------------------------------------


def test_expiring_an_untouched_session_emits_only_checkout_session_expired(shop: Shop) -> None:
    session = shop.open_session()
    expired = shop.client.v1.checkout.sessions.expire(session.id)
    assert (expired.status, expired.url) == ("expired", None)
    assert shop.delivered_types() == ["checkout.session.expired"]


def test_expiring_a_session_after_a_failed_attempt_also_cancels_its_payment_intent(
    shop: Shop,
) -> None:
    session = shop.open_session()
    intent = shop.pay(session.id, card=INSUFFICIENT_FUNDS)["payment_intent"]
    before = len(shop.emitted())
    shop.client.v1.checkout.sessions.expire(session.id)
    assert types_after(shop.emitted(), before) == [
        "payment_intent.canceled",
        "checkout.session.expired",
    ]
    canceled = only_object(shop.delivered(), "payment_intent.canceled")
    assert (canceled["id"], canceled["status"], canceled["cancellation_reason"]) == (
        intent["id"],
        "canceled",
        "abandoned",
    )


def test_advancing_the_clock_expires_exactly_the_open_sessions_past_expires_at(
    shop: Shop,
) -> None:
    soon = shop.open_session()  # expires in an hour
    later = shop.open_session(expires_at=int(time.time()) + 20 * 3600)
    paid_id, _ = shop.paid_session()
    assert shop.sandbox.control("clock/advance", {"seconds": 7200})["expired"] == [soon.id]
    assert shop.sandbox.control("clock/advance", {"seconds": 90000})["expired"] == [later.id]
    assert [shop.session(i).status for i in (soon.id, later.id, paid_id)] == [
        "expired",
        "expired",
        "complete",
    ]
    expired = objects_of(shop.delivered(), "checkout.session.expired")
    assert sorted(s["id"] for s in expired) == sorted([soon.id, later.id])


def test_an_expired_session_cannot_be_paid(shop: Shop) -> None:
    session = shop.open_session()
    shop.sandbox.control("clock/advance", {"seconds": 90000})
    with pytest.raises(ControlError) as refused:
        shop.pay(session.id, card=SUCCESS)
    assert refused.value.status == 400
    assert refused.value.body["error"]["code"] == "checkout_session_not_open"
    assert "charge.succeeded" not in shop.delivered_types()


def test_an_expired_session_cannot_be_expired_again(shop: Shop) -> None:
    session = shop.open_session()
    shop.client.v1.checkout.sessions.expire(session.id)
    with pytest.raises(stripe.InvalidRequestError):
        shop.client.v1.checkout.sessions.expire(session.id)
    assert shop.delivered_types() == ["checkout.session.expired"]


# -- Refunds ---------------------------------------------------------------------------------


def test_a_refund_emits_refund_created_and_charge_refunded(shop: Shop) -> None:
    _, intent = shop.paid_session()
    refund = shop.client.v1.refunds.create(
        params={"payment_intent": intent["id"], "amount": 2000, "reason": "requested_by_customer"}
    )
    assert refund.status == "succeeded"
    assert types_after(shop.emitted(), len(PAID_EVENTS)) == ["refund.created", "charge.refunded"]
    events = shop.delivered()
    assert only_object(events, "refund.created")["id"] == refund.id
    charge = only_object(events, "charge.refunded")
    assert (charge["id"], charge["amount_refunded"], charge["refunded"]) == (
        intent["latest_charge"],
        2000,
        False,
    )
    assert [r["id"] for r in charge["refunds"]["data"]] == [refund.id]


def pending_refund(shop: Shop) -> tuple[stripe.Refund, str]:
    """A full refund left pending, and its charge's id."""
    shop.sandbox.configure(refund_mode="pending")
    _, intent = shop.paid_session()
    refund = shop.client.v1.refunds.create(params={"payment_intent": intent["id"]})
    return refund, intent["latest_charge"]


def test_a_pending_refund_that_succeeds_emits_refund_updated_from_pending(shop: Shop) -> None:
    refund, _ = pending_refund(shop)
    assert refund.status == "pending"
    shop.sandbox.control(f"refunds/{refund.id}/succeed", {})
    updated = [e for e in shop.delivered() if e["type"] == "refund.updated"]
    assert len(updated) == 1
    assert updated[0]["data"]["object"]["status"] == "succeeded"
    assert updated[0]["data"]["previous_attributes"] == {"status": "pending"}
    assert "refund.failed" not in shop.delivered_types()


def test_a_failed_refund_emits_refund_failed_and_gives_the_amount_back_to_the_charge(
    shop: Shop,
) -> None:
    refund, charge_id = pending_refund(shop)
    assert shop.client.v1.charges.retrieve(charge_id).amount_refunded == 5000
    shop.sandbox.control(f"refunds/{refund.id}/fail", {})
    before = len(PAID_EVENTS) + 2
    assert types_after(shop.emitted(), before) == ["refund.failed", "refund.updated"]
    failed = only_object(shop.delivered(), "refund.failed")
    assert (failed["status"], failed["failure_reason"]) == ("failed", "expired_or_canceled_card")
    charge = shop.client.v1.charges.retrieve(charge_id)
    assert (charge.amount_refunded, charge.refunded) == (0, False)
    assert shop.client.v1.refunds.retrieve(refund.id).status == "failed"


def test_a_settled_refund_cannot_succeed_again(shop: Shop) -> None:
    refund, _ = pending_refund(shop)
    shop.sandbox.control(f"refunds/{refund.id}/succeed", {})
    with pytest.raises(ControlError) as refused:
        shop.sandbox.control(f"refunds/{refund.id}/succeed", {})
    assert refused.value.status == 400


# -- Disputes --------------------------------------------------------------------------------


def open_dispute(shop: Shop) -> tuple[dict[str, Any], str]:
    """A fraud dispute on part of a paid charge, and the charge's id."""
    _, intent = shop.paid_session()
    charge_id = intent["latest_charge"]
    body = {"amount": 3000, "reason": "fraudulent"}
    return shop.sandbox.control(f"charges/{charge_id}/dispute", body), charge_id


def test_opening_a_dispute_emits_created_and_funds_withdrawn_and_marks_the_charge_disputed(
    shop: Shop,
) -> None:
    dispute, charge_id = open_dispute(shop)
    assert types_after(shop.emitted(), len(PAID_EVENTS)) == [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
    ]
    events = shop.delivered()
    created = only_object(events, "charge.dispute.created")
    assert (created["id"], created["charge"], created["amount"], created["reason"]) == (
        dispute["id"],
        charge_id,
        3000,
        "fraudulent",
    )
    assert created["status"] == "needs_response"
    withdrawn = only_object(events, "charge.dispute.funds_withdrawn")
    assert [t["amount"] for t in withdrawn["balance_transactions"]] == [-3000]
    assert shop.client.v1.charges.retrieve(charge_id).disputed is True


def test_submitting_evidence_emits_dispute_updated_under_review(shop: Shop) -> None:
    dispute, _ = open_dispute(shop)
    evidence = {"uncategorized_text": "Delivered with signature."}
    shop.sandbox.control(f"disputes/{dispute['id']}/update", {"evidence": evidence})
    updated = [e for e in shop.delivered() if e["type"] == "charge.dispute.updated"]
    assert len(updated) == 1
    obj = updated[0]["data"]["object"]
    assert obj["status"] == "under_review"
    assert obj["evidence"]["uncategorized_text"] == "Delivered with signature."
    assert updated[0]["data"]["previous_attributes"]["status"] == "needs_response"


def test_winning_a_dispute_emits_closed_and_funds_reinstated(shop: Shop) -> None:
    dispute, _ = open_dispute(shop)
    shop.sandbox.control(f"disputes/{dispute['id']}/close", {"outcome": "won"})
    before = len(PAID_EVENTS) + 2
    assert types_after(shop.emitted(), before) == [
        "charge.dispute.closed",
        "charge.dispute.funds_reinstated",
    ]
    events = shop.delivered()
    assert only_object(events, "charge.dispute.closed")["status"] == "won"
    reinstated = only_object(events, "charge.dispute.funds_reinstated")
    assert [t["amount"] for t in reinstated["balance_transactions"]] == [-3000, 3000]


def test_losing_a_dispute_emits_only_closed(shop: Shop) -> None:
    dispute, _ = open_dispute(shop)
    shop.sandbox.control(f"disputes/{dispute['id']}/close", {"outcome": "lost"})
    assert types_after(shop.emitted(), len(PAID_EVENTS) + 2) == ["charge.dispute.closed"]
    assert only_object(shop.delivered(), "charge.dispute.closed")["status"] == "lost"


def test_a_closed_dispute_cannot_be_closed_again(shop: Shop) -> None:
    dispute, _ = open_dispute(shop)
    shop.sandbox.control(f"disputes/{dispute['id']}/close", {"outcome": "lost"})
    with pytest.raises(ControlError) as refused:
        shop.sandbox.control(f"disputes/{dispute['id']}/close", {"outcome": "won"})
    assert refused.value.status == 400
    assert len(objects_of(shop.delivered(), "charge.dispute.closed")) == 1


# -- Delivery --------------------------------------------------------------------------------


def every_flow(shop: Shop) -> None:
    """One of each: paid, declined then paid, 3DS both ways, delayed both ways, expired,
    refunded (pending then failed), disputed, answered and won: 41 events."""
    _, intent = shop.paid_session()
    retried = shop.open_session()
    shop.pay(retried.id, card=GENERIC_DECLINE)
    shop.pay(retried.id, card=SUCCESS)
    for result in ("approve", "fail"):
        secure = shop.open_session()
        shop.pay(secure.id, card=THREE_D_SECURE)
        shop.authenticate(secure.id, result)
    for result in ("succeeded", "failed"):
        delayed = shop.open_session()
        shop.pay(delayed.id, method="delayed")
        shop.settle_delayed(delayed.id, result)
    shop.client.v1.checkout.sessions.expire(shop.open_session().id)
    shop.sandbox.configure(refund_mode="pending")
    refund = shop.client.v1.refunds.create(params={"payment_intent": intent["id"]})
    shop.sandbox.control(f"refunds/{refund.id}/fail", {})
    dispute = shop.sandbox.control(f"charges/{intent['latest_charge']}/dispute", {})
    shop.sandbox.control(f"disputes/{dispute['id']}/update", {"evidence": {"receipt": "r1"}})
    shop.sandbox.control(f"disputes/{dispute['id']}/close", {"outcome": "won"})


def test_every_emitted_event_is_delivered_exactly_once_when_the_knobs_are_off(
    shop: Shop,
) -> None:
    every_flow(shop)
    delivered = Counter(event["id"] for event in shop.delivered())
    emitted = shop.emitted()
    assert {event["type"] for event in emitted} >= EVERY_EVENT_TYPE
    assert len(emitted) == 41
    assert delivered == Counter(event["id"] for event in emitted)


def test_an_events_object_is_a_snapshot_taken_when_the_event_fired(shop: Shop) -> None:
    session_id, intent = shop.paid_session()
    shop.client.v1.refunds.create(params={"payment_intent": intent["id"]})
    shop.sandbox.control(f"charges/{intent['latest_charge']}/dispute", {})
    for events in (shop.delivered(), shop.emitted()):
        assert only_object(events, "payment_intent.created")["status"] == "requires_payment_method"
        charge = only_object(events, "charge.succeeded")
        assert (charge["amount_refunded"], charge["refunded"], charge["disputed"]) == (
            0,
            False,
            False,
        )
        assert charge["refunds"]["data"] == []
        assert only_object(events, "checkout.session.completed")["status"] == "complete"
    now = shop.client.v1.charges.retrieve(intent["latest_charge"])
    assert (now.amount_refunded, now.refunded, now.disputed) == (5000, True, True)
    assert shop.session(session_id).status == "complete"
