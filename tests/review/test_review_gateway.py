"""Review of issue 7 (section 2, bounded time): proof tests for djangomart/payments/
gateway.py. Each test fails on 6d64477. The sandbox over real HTTP behind a proxy."""

import contextlib
import time
from typing import Any

import pytest

from djangomart.payments import gateway
from tests.payments.stripe_proxy import Handler, StripeProxy
from tests.stripe_sandbox.harness import SandboxServer


def test_an_answer_whose_headers_trickle_in_is_not_cut_off_at_the_budget(
    sandbox: SandboxServer, stripe_proxy: Any, settings: Any
) -> None:
    """_BudgetedSession reads the body against the deadline, but the status line and
    headers are read by http.client under the per-recv read timeout only: a Stripe, or
    a proxy or load balancer in front of it, that sends its headers a few bytes at a
    time holds the call as long as it likes. With a budget of 1 s the call below
    returns Stripe's answer after about 4 s; with the production settings the web
    worker is killed by gunicorn (the issue's HTML 500 / order pending with no session
    and its stock held), although settings.py claims a request's Stripe part ends
    within budget + connect + read. (docs/payments.md admits it in a parenthesis; the
    issue's requirement is the bound.)"""
    session = sandbox.client().v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "success_url": "http://localhost:3000/ok",
            "cancel_url": "http://localhost:3000/cancel",
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
        }
    )
    settings.STRIPE_CONNECT_TIMEOUT = 0.5
    settings.STRIPE_READ_TIMEOUT = 0.5
    settings.STRIPE_RETRY_BUDGET = 1.0

    def rule(proxy: StripeProxy, method: str, path: str, n: int, h: Handler, body: bytes) -> bool:
        if method != "GET" or not path.startswith("/v1/checkout/sessions/"):
            return False
        answer = sandbox.client().v1.checkout.sessions.retrieve(session.id)
        payload = str(answer.last_response.body).encode()  # type: ignore[union-attr]
        with contextlib.suppress(OSError):  # the client may hang up (as it should)
            h.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            for _ in range(20):  # about 4 s, each byte well within the read timeout
                h.wfile.write(b"a")
                h.wfile.flush()
                time.sleep(0.2)
            h.wfile.write(
                b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload)
                + payload
            )
            h.wfile.flush()
        h.close_connection = True
        return True

    stripe_proxy(rule)
    with pytest.raises(gateway.GatewayUnavailable):
        gateway.checkout_session_retrieve(session.id)
