"""Real servers for sandbox tests: the sandbox on a loopback port (its own event loop in a
thread) and a webhook receiver that verifies every signature with the official SDK."""

import asyncio
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlencode

import stripe
from aiohttp import web

from stripe_sandbox.app import create_app
from stripe_sandbox.config import Config

API_KEY = "sk_test_sandbox_tests_not_a_real_key"
WEBHOOK_SECRET = "whsec_test_sandbox_tests"  # obviously fake


class SandboxServer:
    """`python -m stripe_sandbox` in-process: same app, real sockets, own event loop."""

    def __init__(self, config: Config | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.app = create_app(config or Config(retry_base=0.05, seed=1))
        # A test that ends while a request sleeps in its scripted latency (a hung Stripe)
        # need not wait for that request: the test is over, its answer unwanted.
        self.runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5)
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        self.url = f"http://127.0.0.1:{self.port}"

    async def _start(self) -> int:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def client(self, api_key: str = API_KEY, **kwargs: Any) -> stripe.StripeClient:
        return stripe.StripeClient(api_key, base_addresses={"api": self.url}, **kwargs)

    def control(
        self, path: str, body: dict[str, Any] | None = None, method: str | None = None
    ) -> Any:
        """Calls a /_sandbox/ route; raises ControlError for a non-2xx answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/_sandbox/{path}",
            data=data,
            method=method or ("POST" if body is not None else "GET"),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.load(response)
        except HTTPError as exc:
            raise ControlError(exc.code, json.load(exc)) from None

    def configure(self, **knobs: Any) -> dict[str, Any]:
        return self.control("config", knobs)  # type: ignore[no-any-return]

    def add_endpoint(self, url: str, secret: str = WEBHOOK_SECRET) -> None:
        self.control("webhook_endpoints", {"url": url, "secret": secret})

    def wait_idle(self, timeout: float = 20) -> None:
        result = self.control("wait_idle", {"timeout": timeout})
        assert result["idle"], f"deliveries still pending: {result['pending']}"

    def deliveries(self, **filters: str) -> list[dict[str, Any]]:
        query = "&".join(f"{k}={v}" for k, v in filters.items())
        return self.control(f"deliveries?{query}")["data"]  # type: ignore[no-any-return]

    def requests(self, **filters: str) -> list[dict[str, Any]]:
        """The /v1 requests the sandbox received, oldest first (GET /_sandbox/requests)."""
        return self.control(f"requests?{urlencode(filters)}")["data"]  # type: ignore[no-any-return]

    def wait_executing(self, timeout: float = 10, **filters: str) -> dict[str, Any]:
        """Waits until a request matching `filters` has reached the sandbox and is still
        executing (its parameters read, no status yet), and returns it: "the first
        request is at Stripe" as a fact instead of a sleep. Use with a latency well above
        the 10 ms poll."""
        deadline = time.monotonic() + timeout
        while True:
            for request in self.requests(**filters):
                # Params null: logged on arrival, its body still being read (not yet at
                # Stripe's work, and not yet holding its idempotency key).
                if request["status"] is None and request["params"] is not None:
                    return request
            assert time.monotonic() < deadline, f"no request {filters} reached the sandbox"
            time.sleep(0.01)


class ControlError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


@dataclass
class Received:
    event: stripe.Event
    payload: bytes
    signature: str
    at: float


@dataclass
class Receiver:
    """A webhook endpoint on loopback. Every delivery's signature is checked with
    stripe.Webhook.construct_event; bad ones are counted and answered 400.
    `respond(event_dict) -> status` decides the answer (200 by default)."""

    secret: str = WEBHOOK_SECRET
    respond: Callable[[dict[str, Any]], int] = lambda event: 200
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    bad_signatures: int = 0
    in_flight: int = 0
    max_in_flight: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                payload = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver._handle(payload, self.headers.get("Stripe-Signature", ""))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhook"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def _handle(self, payload: bytes, signature: str) -> int:
        try:
            event = stripe.Webhook.construct_event(payload, signature, self.secret)
        except (stripe.SignatureVerificationError, ValueError):
            with self._lock:
                self.bad_signatures += 1
            return 400
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
            status = self.respond(json.loads(payload))
        finally:
            with self._changed:
                self.in_flight -= 1
                self.received.append(Received(event, payload, signature, time.monotonic()))
                self._changed.notify_all()
        return status

    def types(self) -> list[str]:
        with self._lock:
            return [r.event.type for r in self.received]

    def ids(self) -> list[str]:
        with self._lock:
            return [r.event.id for r in self.received]

    def wait_for(self, predicate: Callable[["Receiver"], bool], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"timed out; received {[r.event.type for r in self.received]}"
                self._changed.wait(remaining)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def session_params(**overrides: Any) -> Any:
    """Parameters as DjangoMart sends them for an order."""
    params: dict[str, Any] = {
        "mode": "payment",
        "success_url": "http://shop.test/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://shop.test/cancel",
        "line_items": [
            {"quantity": 2, "price_data": {"currency": "usd", "unit_amount": 1500,
                                           "product_data": {"name": "Ceramic Mug"}}},
            {"quantity": 1, "price_data": {"currency": "usd", "unit_amount": 2000,
                                           "product_data": {"name": "Classic Tee"}}},
        ],
        "metadata": {"order_id": "ord_123"},
        "client_reference_id": "ord_123",
        "customer_email": "buyer@example.com",
        "expires_at": int(time.time()) + 3600,
        "payment_intent_data": {"metadata": {"order_id": "ord_123"}},
    }  # fmt: skip
    params.update(overrides)
    return params
