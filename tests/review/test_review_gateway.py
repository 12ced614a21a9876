"""Review of issue 7, "Talking to Stripe": the retry budget and the double-click rules,
against the sandbox over real HTTP (through a small proxy that can fail or slow down
one request, as a real network or Stripe does)."""

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from djangomart.orders.models import Order
from djangomart.payments import gateway
from tests.orders.conftest import checkout_body, checkout_post, goods
from tests.payments.conftest import sandbox, stripe_settings
from tests.review.stripe_proxy import Handler, StripeProxy
from tests.stripe_sandbox.harness import SandboxServer

__all__ = ["goods", "sandbox", "stripe_settings"]

SESSIONS = "/v1/checkout/sessions"
KEY = "double-click-2c81f0a95e6d"


@pytest.fixture
def proxied(sandbox: SandboxServer, settings: Any) -> Iterator[Any]:
    proxies: list[StripeProxy] = []

    def start(rule: Any) -> StripeProxy:
        proxy = StripeProxy(sandbox.url, rule)
        proxies.append(proxy)
        settings.STRIPE_API_BASE = proxy.url
        gateway.client_reset()
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()


@pytest.mark.django_db(transaction=True)
def test_a_double_click_whose_first_attempt_met_a_transient_500_does_not_cancel_the_order(
    goods: None, sandbox: SandboxServer, proxied: Any, settings: Any
) -> None:
    """Click 1's first attempt gets a 500 (Stripe processed nothing); click 2's request,
    same key, is then executing at Stripe, so click 1's retries get 409
    idempotency_key_in_use until its budget ends. Click 1 never had a request hanging
    at Stripe (docs/payments.md: only "after one of our own attempts timed out" is a
    key in use an outage), so it must answer 409 checkout_in_progress and leave the
    order alone; click 2 then gets its session (201)."""
    settings.STRIPE_RETRY_BUDGET = 4.0
    first_arrived, second_forwarded = threading.Event(), threading.Event()

    def rule(proxy: StripeProxy, method: str, path: str, n: int, h: Handler, body: bytes) -> bool:
        if (method, path) != ("POST", SESSIONS):
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

    proxied(rule)
    # Click 2's session takes 3 s at Stripe: within its own budget, but it finishes
    # after click 1's budget is spent.
    sandbox.configure(api_latency_min=3.0, api_latency_max=3.0)

    def click() -> Any:
        try:
            return checkout_post(Client(), checkout_body(), HTTP_IDEMPOTENCY_KEY=KEY)
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(click)
        assert first_arrived.wait(20)
        time.sleep(1.5)  # click 2 comes a moment later (and so has a later deadline)
        second = pool.submit(click)
        assert second_forwarded.wait(20)
        time.sleep(0.3)
        sandbox.configure(api_latency_min=0.0, api_latency_max=0.0)
        answers = [first.result(60), second.result(60)]

    order = Order.objects.get()
    assert order.status == "pending", [a.json() for a in answers]
    assert sorted(a.status_code for a in answers) in ([201, 201], [201, 409]), [
        a.json() for a in answers
    ]


def test_an_answer_trickling_in_is_cut_off_at_the_retry_budget(
    sandbox: SandboxServer, proxied: Any, settings: Any
) -> None:
    """The read timeout bounds each wait for the next bytes, not the whole answer: a
    Stripe (or a proxy) that sends its answer slowly holds the call past the budget,
    and the web worker past gunicorn's timeout."""
    settings.STRIPE_READ_TIMEOUT = 0.5
    settings.STRIPE_RETRY_BUDGET = 1.0

    def rule(proxy: StripeProxy, method: str, path: str, n: int, h: Handler, body: bytes) -> bool:
        if (method, path) != ("POST", SESSIONS):
            return False
        answer = sandbox.client().v1.checkout.sessions.create(
            params=_session_params(),  # type: ignore[arg-type]
            options={"idempotency_key": "trickle"},
        )
        payload = str(answer.last_response.body).encode()  # type: ignore[union-attr]
        # About 4 s for the whole body, each byte well within the read timeout.
        h.answer_trickled(payload, every=4.0 / len(payload))
        return True

    proxied(rule)
    # The call must give up when its budget (1 s) is spent, however the bytes arrive.
    with pytest.raises(gateway.GatewayUnavailable):
        gateway.checkout_session_create(**_gateway_args())


def _session_params() -> dict[str, Any]:
    return {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": "usd",
                    "unit_amount": 2000,
                    "product_data": {"name": "Tee"},
                },
            }
        ],
        "success_url": "http://localhost:3000/ok",
        "cancel_url": "http://localhost:3000/cancel",
    }


def _gateway_args() -> dict[str, Any]:
    return {
        "order_id": "7d1f6a52-3c7e-4d59-9a39-0000000000aa",
        "email": "ada@example.com",
        "currency": "usd",
        "lines": [gateway.CheckoutLine(name="Tee", unit_amount=2000, quantity=1)],
        "success_url": "http://localhost:3000/ok",
        "cancel_url": "http://localhost:3000/cancel",
        "expires_at": int(time.time()) + 3600,
    }
