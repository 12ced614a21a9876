"""When Stripe is slow, down, refuses, or forgot a session: POST /api/v1/checkout and POST
/api/v1/orders/{id}/sync answer in bounded time with an honest JSON error, and a
double-click while Stripe is slow never cancels the order."""

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from djangomart.catalog.models import Variant
from djangomart.catalog.selectors import variant_available
from djangomart.orders.models import Order, OrderEvent
from djangomart.payments.staff import order_staff_cancel
from stripe_sandbox.state import SANDBOX
from tests.conftest import make_product
from tests.orders.conftest import checkout_body, checkout_post
from tests.payments.stripe_proxy import Handler, StripeProxy
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = pytest.mark.django_db


def available(sku: str) -> int:
    return variant_available(Variant.objects.get(sku=sku))


def sessions_on_stripe(sandbox: SandboxServer) -> list[Any]:
    return list(sandbox.client().v1.checkout.sessions.list({"limit": 100}).data)


def stripe_log_lines(caplog: Any) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "djangomart.payments.checkout"]


# -- A hung Stripe --------------------------------------------------------------------


def test_a_hung_stripe_answers_502_within_the_budget_and_cancels_the_order(
    goods: None, sandbox: SandboxServer, client: Client, settings: Any
) -> None:
    # Stripe answers after 6 s, the budget is 2.5 s. No stopwatch: the sandbox's request
    # log shows that the shop gave up while Stripe was still working on the first attempt.
    sandbox.configure(api_latency_min=6.0, api_latency_max=6.0)
    settings.STRIPE_READ_TIMEOUT = 1.0
    settings.STRIPE_RETRY_BUDGET = 2.5
    response = checkout_post(client)
    first, *_ = sandbox.requests(method="POST", path="/v1/checkout/sessions")
    assert first["status"] is None
    assert response.status_code == 502, response.content
    body = response.json()
    order = Order.objects.get()
    assert body["code"] == "payment_provider_unavailable"
    assert (body["id"], body["access_token"]) == (str(order.id), order.access_token)
    assert (order.status, order.stripe_checkout_session_id) == ("canceled", None)
    assert available("TEE-M") == 10


# -- A refusal is not an outage -------------------------------------------------------


@pytest.fixture
def cheap(db: None) -> None:
    make_product("sticker", variants=[("STICKER", 20, 10)])  # under Stripe's 50-cent minimum


def test_an_amount_stripe_refuses_is_payment_provider_rejected_and_cancels_the_order(
    cheap: None, sandbox: SandboxServer, client: Client, caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="djangomart.payments.checkout")
    response = checkout_post(client, checkout_body(lines=[{"sku": "STICKER", "quantity": 1}]))
    assert response.status_code == 502, response.content
    body = response.json()
    order = Order.objects.get()
    assert body["code"] == "payment_provider_rejected"
    assert body["provider_code"] == "amount_too_small"
    assert (body["id"], body["access_token"]) == (str(order.id), order.access_token)
    assert order.status == "canceled"
    assert available("STICKER") == 10
    assert sessions_on_stripe(sandbox) == []
    [line] = stripe_log_lines(caplog)
    assert line.order_id == str(order.id)  # type: ignore[attr-defined]
    assert line.stripe_code == "amount_too_small"  # type: ignore[attr-defined]
    assert "at least 50" in line.stripe_message  # type: ignore[attr-defined]


def test_an_outage_is_logged_with_the_order_and_stripes_message(
    goods: None, sandbox: SandboxServer, client: Client, caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="djangomart.payments.checkout")
    sandbox.configure(api_error_rate=1.0)
    response = checkout_post(client)
    assert response.json()["code"] == "payment_provider_unavailable"
    [line] = stripe_log_lines(caplog)
    assert line.order_id == str(Order.objects.get().id)  # type: ignore[attr-defined]
    assert line.stripe_status == 500  # type: ignore[attr-defined]
    assert "injected by the sandbox" in line.stripe_message  # type: ignore[attr-defined]


# -- A retry of an order that ended ---------------------------------------------------

KEY = "retry-0123456789abcdef"


def test_a_retry_of_a_refused_checkout_is_answered_as_the_refusal_again(
    cheap: None, sandbox: SandboxServer, client: Client
) -> None:
    """A refusal keeps its Idempotency-Key, so the retry finds the canceled order: it
    must hear the refusal again (with Stripe's code), not an outage it would retry for
    24 hours. Stripe is not asked again."""
    body = checkout_body(lines=[{"sku": "STICKER", "quantity": 1}])
    first = checkout_post(client, body, HTTP_IDEMPOTENCY_KEY=KEY)
    assert (first.status_code, first.json()["code"]) == (502, "payment_provider_rejected")
    again = checkout_post(client, body, HTTP_IDEMPOTENCY_KEY=KEY)
    assert (again.status_code, again.json()["code"]) == (502, "payment_provider_rejected")
    assert again.json()["provider_code"] == "amount_too_small"
    for field in ("id", "access_token"):
        assert again.json()[field] == first.json()[field]
    assert len(sandbox.requests(method="POST", path="/v1/checkout/sessions")) == 1
    cancel = OrderEvent.objects.get(kind="transition", to_status="canceled")
    assert cancel.data == {"cause": "provider_rejected", "provider_code": "amount_too_small"}


def test_an_outage_cancel_records_its_cause(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    sandbox.configure(api_error_rate=1.0)
    assert checkout_post(client).json()["code"] == "payment_provider_unavailable"
    cancel = OrderEvent.objects.get(kind="transition", to_status="canceled")
    assert cancel.data == {"cause": "provider_unavailable"}


def _closed(response: Any, order: Order) -> None:
    assert response.status_code == 409, response.content
    body = response.json()
    assert (body["code"], body["order_status"]) == ("order_closed", order.status)
    assert order.status in body["message"]
    assert (body["id"], body["access_token"]) == (str(order.id), order.access_token)


def test_a_retry_of_an_expired_order_is_409_order_closed(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    """Not 201 with the expired session's URL, where the customer could not pay."""
    placed = checkout_post(client, HTTP_IDEMPOTENCY_KEY=KEY).json()
    sandbox.client().v1.checkout.sessions.expire(placed["checkout_session_id"])
    assert sync(client, placed).json()["status"] == "expired"
    _closed(checkout_post(client, HTTP_IDEMPOTENCY_KEY=KEY), Order.objects.get())


def test_a_retry_of_an_order_staff_canceled_is_409_order_closed(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    placed = checkout_post(client, HTTP_IDEMPOTENCY_KEY=KEY).json()
    order_staff_cancel(order_id=UUID(placed["order"]["id"]), user=None, reason="Abandoned.")
    _closed(checkout_post(client, HTTP_IDEMPOTENCY_KEY=KEY), Order.objects.get())


def test_a_retry_of_an_order_staff_canceled_before_it_had_a_session_is_409_order_closed(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    """Was 502 payment_provider_unavailable: Stripe was never asked."""
    placed = checkout_post(client, HTTP_IDEMPOTENCY_KEY=KEY).json()
    Order.objects.update(stripe_checkout_session_id=None, checkout_url="")
    order_staff_cancel(order_id=UUID(placed["order"]["id"]), user=None, reason="Stuck.")
    _closed(checkout_post(client, HTTP_IDEMPOTENCY_KEY=KEY), Order.objects.get())


def test_a_retry_of_a_paid_order_is_the_same_201_answer_showing_it_paid(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    placed = checkout_post(client, HTTP_IDEMPOTENCY_KEY=KEY).json()
    sandbox.control(
        f"checkout/sessions/{placed['checkout_session_id']}/pay", {"card": "4242424242424242"}
    )
    assert sync(client, placed).json()["status"] == "paid"
    again = checkout_post(client, HTTP_IDEMPOTENCY_KEY=KEY)
    assert again.status_code == 201, again.content
    assert again.json()["checkout_session_id"] == placed["checkout_session_id"]
    assert (again.json()["order"]["id"], again.json()["order"]["status"]) == (
        placed["order"]["id"],
        "paid",
    )


# -- A double-click while Stripe is slow ----------------------------------------------


def _post_in_thread(barrier: threading.Barrier | None = None) -> Any:
    try:
        if barrier is not None:
            barrier.wait(10)
        return checkout_post(Client(), HTTP_IDEMPOTENCY_KEY="double-click-while-slow")
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_double_click_while_stripe_is_slow_gets_one_order_and_one_session_twice(
    goods: None, sandbox: SandboxServer
) -> None:
    # Longer than the SDK's own retries of a 409 would wait (about 3 s), shorter than the
    # budget: the second request waits for the first one's session.
    sandbox.configure(api_latency_min=4.0, api_latency_max=4.0)
    barrier = threading.Barrier(2)
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(_post_in_thread, barrier) for _ in range(2)]
        answers = [f.result(30) for f in futures]
    assert [a.status_code for a in answers] == [201, 201], [a.content for a in answers]
    assert len({a.json()["checkout_session_id"] for a in answers}) == 1
    order = Order.objects.get()
    assert (order.status, order.stripe_checkout_session_id) == (
        "pending",
        answers[0].json()["checkout_session_id"],
    )
    assert available("TEE-M") == 10 - 2
    assert len(sessions_on_stripe(sandbox)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_double_click_outwaiting_the_budget_is_409_checkout_in_progress_never_a_cancel(
    goods: None, sandbox: SandboxServer, settings: Any
) -> None:
    sandbox.configure(api_latency_min=3.0, api_latency_max=3.0)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(_post_in_thread)
        sandbox.wait_executing(path="/v1/checkout/sessions")  # the first click is at Stripe
        settings.STRIPE_RETRY_BUDGET = 1.0  # the second click gives up waiting first
        second = _post_in_thread()
        assert second.status_code == 409, second.content
        assert second.json()["code"] == "checkout_in_progress"
        assert second.json()["id"] == str(Order.objects.get().id)
        assert int(second["Retry-After"]) >= 1
        assert Order.objects.get().status == "pending"
        created = first.result(30)
    assert created.status_code == 201, created.content
    sandbox.configure(api_latency_min=0.0, api_latency_max=0.0)
    again = _post_in_thread()  # the client follows Retry-After
    assert again.status_code == 201
    assert again.json()["checkout_session_id"] == created.json()["checkout_session_id"]
    assert Order.objects.get().status == "pending"
    assert available("TEE-M") == 10 - 2


@pytest.mark.django_db(transaction=True)
def test_a_double_click_whose_first_attempt_met_a_transient_500_does_not_cancel_the_order(
    goods: None, sandbox: SandboxServer, stripe_proxy: Any, settings: Any
) -> None:
    """Click 1's first attempt gets a 500 (an answer: Stripe processed nothing); click 2's
    request, same key, is then executing at Stripe, so click 1's retries get 409
    idempotency_key_in_use until its budget ends. Nothing of click 1's is executing at
    Stripe, so the key is click 2's: 409 checkout_in_progress, the order left alone; click
    2 then gets its session (201)."""
    settings.STRIPE_RETRY_BUDGET = 4.0
    first_arrived, second_forwarded = threading.Event(), threading.Event()

    def rule(proxy: StripeProxy, method: str, path: str, n: int, h: Handler, body: bytes) -> bool:
        if (method, path) != ("POST", "/v1/checkout/sessions"):
            return False
        if n == 1:
            first_arrived.set()
            second_forwarded.wait(20)
            time.sleep(0.1)  # click 2's request is now executing at the sandbox
            h.answer_500()
            return True
        if n == 2:
            second_forwarded.set()
        return False

    stripe_proxy(rule)
    # Click 2's session takes 3 s at Stripe: within its own budget, but it finishes
    # after click 1's budget is spent.
    sandbox.configure(api_latency_min=3.0, api_latency_max=3.0)

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(_post_in_thread)
        assert first_arrived.wait(20)
        time.sleep(1.5)  # click 2 comes a moment later (and so has a later deadline)
        second = pool.submit(_post_in_thread)
        assert second_forwarded.wait(20)
        time.sleep(0.3)
        sandbox.configure(api_latency_min=0.0, api_latency_max=0.0)
        answers = [first.result(60), second.result(60)]

    order = Order.objects.get()
    assert order.status == "pending", [a.json() for a in answers]
    assert [a.status_code for a in answers] in ([409, 201], [201, 201]), [a.json() for a in answers]
    if answers[0].status_code == 409:
        assert answers[0].json()["code"] == "checkout_in_progress"
    assert answers[1].json()["checkout_session_id"] == order.stripe_checkout_session_id


# -- expires_at -----------------------------------------------------------------------


def test_the_shortest_expiry_still_gives_stripe_30_minutes_when_the_call_is_late(
    goods: None, sandbox: SandboxServer, client: Client, settings: Any
) -> None:
    settings.CHECKOUT_EXPIRY_MINUTES = 30
    # The session is created 1.5 s after the order (Stripe is slow): Stripe wants
    # expires_at at least 30 minutes after *its* creation of the session.
    sandbox.configure(api_latency_min=1.5, api_latency_max=1.5)
    response = checkout_post(client)
    assert response.status_code == 201, response.content
    session = sandbox.client().v1.checkout.sessions.retrieve(response.json()["checkout_session_id"])
    order = Order.objects.get()
    assert session.expires_at == int(order.expires_at.timestamp())
    assert session.expires_at - session.created >= 30 * 60


def test_the_longest_allowed_expiry_survives_our_clock_being_a_second_ahead_of_stripes(
    goods: None, sandbox: SandboxServer, client: Client, settings: Any
) -> None:
    """1440 minutes is allowed (30 to 1440, Stripe's limits), but exactly 24 hours from
    our clock is more than 24 hours from Stripe's when Stripe's is a little behind."""
    settings.CHECKOUT_EXPIRY_MINUTES = 1440
    sandbox.app[SANDBOX].store.clock_offset = -2  # Stripe's clock two seconds behind ours
    before = timezone.now()
    response = checkout_post(client)
    assert response.status_code == 201, response.json()
    order = Order.objects.get()
    assert order.status == "pending"
    # Capped at 24 hours minus the 5-minute margin, and the stock reserved as long.
    assert 1434 * 60 <= (order.expires_at - before).total_seconds() <= 1435 * 60


def test_the_order_expires_with_its_session(
    goods: None, sandbox: SandboxServer, client: Client, settings: Any
) -> None:
    settings.CHECKOUT_EXPIRY_MINUTES = 90
    before = timezone.now()
    response = checkout_post(client)
    session = sandbox.client().v1.checkout.sessions.retrieve(response.json()["checkout_session_id"])
    order = Order.objects.get()
    assert session.expires_at == int(order.expires_at.timestamp())
    assert 89 * 60 <= (order.expires_at - before).total_seconds() <= 91 * 60


# -- POST /orders/{id}/sync -----------------------------------------------------------


def sync(client: Client, placed: dict[str, Any]) -> Any:
    return client.post(
        f"/api/v1/orders/{placed['order']['id']}/sync",
        headers={"X-Order-Token": placed["access_token"]},
    )


def test_sync_of_a_session_stripe_does_not_know_is_409_checkout_session_unknown(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    placed = checkout_post(client).json()
    Order.objects.update(stripe_checkout_session_id="cs_test_forgotten_by_stripe")
    response = sync(client, placed)
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "checkout_session_unknown"
    assert Order.objects.get().status == "pending"


def test_sync_while_stripe_is_down_stays_502_unavailable(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    placed = checkout_post(client).json()
    sandbox.configure(api_error_rate=1.0)
    response = sync(client, placed)
    assert (response.status_code, response.json()["code"]) == (502, "payment_provider_unavailable")


def test_the_schema_lists_every_status_of_checkout_and_sync(client: Client) -> None:
    schema = json.loads(client.get("/api/v1/openapi.json").content)
    checkout = schema["paths"]["/api/v1/checkout"]["post"]["responses"]
    sync_ = schema["paths"]["/api/v1/orders/{order_id}/sync"]["post"]["responses"]
    assert {"201", "404", "409", "422", "502"} <= set(checkout)
    assert {"200", "404", "409", "502"} <= set(sync_)
    assert "checkout_in_progress" in checkout["409"]["description"]
    assert "payment_provider_rejected" in checkout["502"]["description"]
    assert "order_closed" in checkout["409"]["description"]
    assert "checkout_session_unknown" in sync_["409"]["description"]
