"""payments/gateway.py against the sandbox over real HTTP: bounded time (connect/read
timeouts and one retry budget per logical call) and honest errors (an outage, a refusal,
a missing object and a key still in use are different exceptions)."""

import contextlib
import json
import logging
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import stripe

from djangomart.payments import gateway
from stripe_sandbox.state import SANDBOX
from tests.payments.race_helpers import wait_until
from tests.payments.stripe_proxy import Handler, StripeProxy
from tests.stripe_sandbox.harness import SandboxServer

ORDER_ID = "7d1f6a52-3c7e-4d59-9a39-000000000001"
SESSIONS = "/v1/checkout/sessions"


def sessions_on_stripe(sandbox: SandboxServer) -> list[Any]:
    return list(sandbox.client().v1.checkout.sessions.list({"limit": 100}).data)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def session_create(order_id: str = ORDER_ID, unit_amount: int = 2000, **overrides: Any) -> Any:
    arguments: dict[str, Any] = {
        "order_id": order_id,
        "email": "ada@example.com",
        "currency": "usd",
        "lines": [gateway.CheckoutLine(name="Tee", unit_amount=unit_amount, quantity=1)],
        "success_url": "http://localhost:3000/ok",
        "cancel_url": "http://localhost:3000/cancel",
        "expires_at": int(time.time()) + 3600,
    }
    arguments.update(overrides)
    return gateway.checkout_session_create(**arguments)


class FakeStripe:
    """A Stripe that answers every request with `status` and `error`, counting requests."""

    def __init__(self, status: int, error: dict[str, Any], headers: dict[str, str]) -> None:
        self.requests: list[tuple[str, str | None]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.requests.append((self.path, self.headers.get("Idempotency-Key")))
                body = json.dumps({"error": error}).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_stripe(stripe_settings: Any) -> Any:
    servers: list[FakeStripe] = []

    def start(status: int, error: dict[str, Any], **headers: str) -> FakeStripe:
        server = FakeStripe(status, error, headers)
        servers.append(server)
        stripe_settings.STRIPE_API_BASE = server.url
        gateway.client_reset()
        return server

    yield start
    for server in servers:
        server.stop()


# -- Bounded time ---------------------------------------------------------------------


def test_a_hung_stripe_is_given_up_within_the_retry_budget(
    sandbox: SandboxServer, settings: Any
) -> None:
    # Stripe answers after 5 s, the budget is 1.5 s. No stopwatch: the sandbox's request
    # log shows that the call gave up while Stripe was still working on the first attempt.
    # (The SDK alone would wait 80 s per attempt.)
    sandbox.configure(api_latency_min=5.0, api_latency_max=5.0)
    settings.STRIPE_READ_TIMEOUT = 0.5
    settings.STRIPE_RETRY_BUDGET = 1.5
    with pytest.raises(gateway.GatewayUnavailable):
        session_create()
    # When it gave up, the first attempt was still executing at Stripe; every retry
    # (same key) met it there.
    first, *retries = sandbox.requests(method="POST", path="/v1/checkout/sessions")
    assert first["status"] is None
    assert retries, "the timed-out attempt was not retried"
    assert {(r["status"], r["error"]["code"]) for r in retries} == {(409, "idempotency_key_in_use")}
    assert {r["idempotency_key"] for r in [first, *retries]} == {f"checkout:{ORDER_ID}"}


def test_a_read_timeout_is_retried_with_the_same_key_and_gets_stripes_answer(
    sandbox: SandboxServer, settings: Any
) -> None:
    # Stripe answers in 0.8 s but the first attempt gives up after 0.5 s; the retry (same
    # Idempotency-Key) waits for the first request (409 in use) and then replays it.
    sandbox.configure(api_latency_min=0.8, api_latency_max=0.8)
    settings.STRIPE_READ_TIMEOUT = 0.5
    settings.STRIPE_RETRY_BUDGET = 8.0

    def answer_retries_at_once() -> None:
        # Once the first request sleeps in its latency, later ones (the replay) need none.
        sandbox.wait_executing(path="/v1/checkout/sessions")
        sandbox.configure(api_latency_min=0, api_latency_max=0)

    with ThreadPoolExecutor(1) as pool:
        unslowed = pool.submit(answer_retries_at_once)
        session = session_create()
        unslowed.result(10)
    assert [s.id for s in sandbox.client().v1.checkout.sessions.list().data] == [session.id]
    first, *retries = sandbox.requests(method="POST", path="/v1/checkout/sessions")
    assert (first["status"], first["idempotent_replayed"]) == (200, False)
    assert (retries[-1]["status"], retries[-1]["idempotent_replayed"]) == (200, True)
    assert {r["idempotency_key"] for r in [first, *retries]} == {f"checkout:{ORDER_ID}"}
    assert {r["params_sha256"] for r in [first, *retries]} == {first["params_sha256"]}


def test_an_answer_trickling_in_is_cut_off_at_the_retry_budget(
    sandbox: SandboxServer, stripe_proxy: Any, settings: Any
) -> None:
    """The read timeout bounds each wait for the next bytes, not the whole answer: a
    Stripe (or a proxy) that sends its answer slowly would hold the call past the budget,
    and the web worker past gunicorn's timeout."""
    settings.STRIPE_READ_TIMEOUT = 0.5
    settings.STRIPE_RETRY_BUDGET = 1.0

    def rule(proxy: StripeProxy, method: str, path: str, n: int, h: Handler, body: bytes) -> bool:
        if (method, path) != ("POST", SESSIONS):
            return False
        answer = sandbox.client().v1.checkout.sessions.create(
            params=_session_params(),  # type: ignore[arg-type]
            options={"idempotency_key": f"trickle-{n}"},
        )
        payload = str(answer.last_response.body).encode()  # type: ignore[union-attr]
        # About 4 s for the whole body, each byte well within the read timeout.
        h.answer_trickled(payload, every=4.0 / len(payload))
        return True

    stripe_proxy(rule)
    with pytest.raises(gateway.GatewayUnavailable):
        session_create()


def test_an_answer_read_in_pieces_within_the_budget_is_the_whole_answer(
    sandbox: SandboxServer, stripe_proxy: Any, settings: Any
) -> None:
    settings.STRIPE_RETRY_BUDGET = 8.0

    def rule(proxy: StripeProxy, method: str, path: str, n: int, h: Handler, body: bytes) -> bool:
        if (method, path) != ("POST", SESSIONS):
            return False
        answer = sandbox.client().v1.checkout.sessions.create(
            params=_session_params(),  # type: ignore[arg-type]
            options={"idempotency_key": "pieces"},
        )
        payload = str(answer.last_response.body).encode()  # type: ignore[union-attr]
        h.answer_trickled(payload, every=0.2 / len(payload))
        return True

    stripe_proxy(rule)
    session = session_create()
    assert session.id == sessions_on_stripe(sandbox)[0].id
    assert session.url


def _headers_trickled(h: Handler, payload: bytes) -> None:
    """A 200 whose status line comes at once and whose headers take about 4 s, each byte
    well within the read timeout, then `payload`: socket timeouts alone let it through."""
    with contextlib.suppress(OSError):  # the client may hang up (as it should)
        h.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(20):
            h.wfile.write(b"a")
            h.wfile.flush()
            time.sleep(0.2)
        h.wfile.write(
            b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload)
            + payload
        )
        h.wfile.flush()
    h.close_connection = True


def _session_on_stripe(sandbox: SandboxServer) -> tuple[str, bytes]:
    """A session made straight at the sandbox, and its JSON as Stripe answers it."""
    session = sandbox.client().v1.checkout.sessions.create(
        params=_session_params()  # type: ignore[arg-type]
    )
    answer = sandbox.client().v1.checkout.sessions.retrieve(session.id)
    return session.id, str(answer.last_response.body).encode()  # type: ignore[union-attr]


def test_an_answer_whose_headers_trickle_in_is_cut_off_at_the_budget(
    sandbox: SandboxServer, stripe_proxy: Any, settings: Any
) -> None:
    """The status line and headers are read by http.client under the per-wait read
    timeout only; the gateway's watchdog ends the whole exchange at the budget."""
    session_id, payload = _session_on_stripe(sandbox)
    settings.STRIPE_CONNECT_TIMEOUT = 0.5
    settings.STRIPE_READ_TIMEOUT = 0.5
    settings.STRIPE_RETRY_BUDGET = 1.0

    def rule(proxy: StripeProxy, method: str, path: str, n: int, h: Handler, body: bytes) -> bool:
        if method != "GET" or not path.startswith(f"{SESSIONS}/"):
            return False
        _headers_trickled(h, payload)
        return True

    stripe_proxy(rule)
    with pytest.raises(gateway.GatewayUnavailable):
        gateway.checkout_session_retrieve(session_id)


def test_a_reused_keep_alive_connection_is_watched_too(
    sandbox: SandboxServer, stripe_proxy: Any, settings: Any
) -> None:
    """The second call goes out on the first one's pooled connection (no connect, so no
    new socket to see): its exchange is bounded all the same."""
    session_id, payload = _session_on_stripe(sandbox)
    settings.STRIPE_READ_TIMEOUT = 0.5
    settings.STRIPE_RETRY_BUDGET = 1.0
    client_ports: list[int] = []

    def rule(proxy: StripeProxy, method: str, path: str, n: int, h: Handler, body: bytes) -> bool:
        if method != "GET" or not path.startswith(f"{SESSIONS}/"):
            return False
        client_ports.append(h.client_address[1])
        if n == 1:
            return False  # forwarded: a normal answer, and the connection kept alive
        _headers_trickled(h, payload)
        return True

    stripe_proxy(rule)
    assert gateway.checkout_session_retrieve(session_id)["id"] == session_id
    with pytest.raises(gateway.GatewayUnavailable):
        gateway.checkout_session_retrieve(session_id)
    assert client_ports[0] == client_ports[1], "the second call did not reuse the connection"


class _TrickleOverTls:
    """An https server (a self-signed certificate for 127.0.0.1, made with openssl) whose
    answers trickle their headers, as a TLS-terminating proxy in front of Stripe might."""

    def __init__(self, directory: Path, payload: bytes) -> None:
        self.cert = directory / "cert.pem"
        key = directory / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(key), "-out", str(self.cert)],
            check=True, capture_output=True,
        )  # fmt: skip

        class TrickleHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                _headers_trickled(self, payload)  # type: ignore[arg-type]

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, key)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), TrickleHandler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_over_tls_an_answer_whose_headers_trickle_in_is_cut_off_at_the_budget(
    stripe_settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real Stripe is https: the watchdog shuts down the SSLSocket's connection."""
    payload = json.dumps({"id": "cs_test_tls", "object": "checkout.session"}).encode()
    if shutil.which("openssl") is None:
        # The certificate is made at run time (none is committed); in CI a skip fails.
        pytest.skip("the openssl command is needed to make a test certificate")
    server = _TrickleOverTls(tmp_path, payload)
    try:
        # The SDK verifies against its bundle; this one holds the test's certificate.
        monkeypatch.setattr(stripe, "ca_bundle_path", str(server.cert))
        stripe_settings.STRIPE_API_BASE = server.url
        stripe_settings.STRIPE_READ_TIMEOUT = 0.5
        stripe_settings.STRIPE_RETRY_BUDGET = 1.0
        gateway.client_reset()
        with pytest.raises(gateway.GatewayUnavailable) as caught:
            gateway.checkout_session_retrieve("cs_test_tls")
        # A timeout, not a certificate problem (which would not be retried either).
        assert "no answer within STRIPE_RETRY_BUDGET" in caught.value.message
    finally:
        server.stop()


def test_calls_inside_one_budget_share_its_deadline(sandbox: SandboxServer, settings: Any) -> None:
    """A checkout's session creation and the expiry that may follow are one budget, so
    that the request as a whole ends inside the web worker's timeout."""
    settings.STRIPE_RETRY_BUDGET = 2.0
    sandbox.configure(api_latency_min=1.2, api_latency_max=1.2)
    with gateway.budget():
        session = session_create()  # about 1.2 s of the 2 s
        # Alone it would have its own 2 s and get its answer; in the budget, 0.8 s.
        with pytest.raises(gateway.GatewayUnavailable):
            gateway.checkout_session_retrieve(session.id)


def test_a_transient_5xx_is_retried_twice_with_the_same_key(fake_stripe: Any) -> None:
    down = fake_stripe(500, {"type": "api_error", "message": "down"})
    with pytest.raises(gateway.GatewayUnavailable):
        session_create()
    assert down.requests == [("/v1/checkout/sessions", f"checkout:{ORDER_ID}")] * 3


def test_a_408_from_stripe_or_a_proxy_is_an_outage_and_retried(fake_stripe: Any) -> None:
    # Who timed out was the server waiting for our request: trying again can work.
    slow = fake_stripe(408, {"type": "api_error", "message": "Request Timeout"})
    with pytest.raises(gateway.GatewayUnavailable):
        session_create()
    assert len(slow.requests) == 3


def test_a_429_is_an_outage_and_retried(fake_stripe: Any) -> None:
    limited = fake_stripe(429, {"type": "invalid_request_error", "code": "rate_limit",
                                "message": "Too many requests"})  # fmt: skip
    with pytest.raises(gateway.GatewayUnavailable):
        session_create()
    assert len(limited.requests) == 3


def test_stripe_should_retry_false_is_not_retried(fake_stripe: Any) -> None:
    down = fake_stripe(
        500, {"type": "api_error", "message": "no"}, **{"Stripe-Should-Retry": "false"}
    )
    with pytest.raises(gateway.GatewayUnavailable):
        session_create()
    assert len(down.requests) == 1


def test_an_unreachable_stripe_is_an_outage(stripe_settings: Any, settings: Any) -> None:
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # discard port: connection refused
    gateway.client_reset()
    with pytest.raises(gateway.GatewayUnavailable):
        session_create()


# -- Honest errors --------------------------------------------------------------------


def test_an_amount_under_stripes_minimum_is_a_refusal_carrying_stripes_code_and_message(
    sandbox: SandboxServer,
) -> None:
    with pytest.raises(gateway.GatewayRejected) as caught:
        session_create(unit_amount=10)
    error = caught.value
    assert not isinstance(error, gateway.GatewayUnavailable)
    assert (error.http_status, error.code) == (400, "amount_too_small")
    assert "at least 50" in error.message


def test_a_refusal_is_not_retried(fake_stripe: Any) -> None:
    refusing = fake_stripe(400, {"type": "invalid_request_error", "message": "bad",
                                 "code": "parameter_invalid_integer", "param": "x"})  # fmt: skip
    with pytest.raises(gateway.GatewayRejected) as caught:
        session_create()
    assert len(refusing.requests) == 1
    assert caught.value.param == "x"


def test_a_session_stripe_does_not_know_is_not_found(sandbox: SandboxServer) -> None:
    with pytest.raises(gateway.GatewayNotFound) as caught:
        gateway.checkout_session_retrieve("cs_test_never_created")
    assert caught.value.code == "resource_missing"
    assert isinstance(caught.value, gateway.GatewayRejected)


def test_a_payment_intent_is_read_as_stripes_json_and_an_unknown_one_is_not_found(
    sandbox: SandboxServer,
) -> None:
    session = session_create()
    sandbox.control(f"checkout/sessions/{session.id}/pay", {"method": "delayed"})
    intent_id = gateway.checkout_session_retrieve(session.id)["payment_intent"]
    intent = gateway.payment_intent_retrieve(intent_id)
    assert (intent["id"], intent["status"], intent["metadata"]) == (
        intent_id,
        "processing",
        {"order_id": ORDER_ID},
    )
    with pytest.raises(gateway.GatewayNotFound):
        gateway.payment_intent_retrieve("pi_test_never_created")


def test_reading_a_payment_intent_retries_an_outage_within_the_budget(fake_stripe: Any) -> None:
    failing = fake_stripe(500, {"type": "api_error", "message": "boom"})
    with pytest.raises(gateway.GatewayUnavailable):
        gateway.payment_intent_retrieve("pi_test_x")
    assert len(failing.requests) == 1 + gateway.MAX_NETWORK_RETRIES


def test_a_bad_api_key_is_a_refusal(sandbox: SandboxServer, settings: Any) -> None:
    settings.STRIPE_SECRET_KEY = "sk_live_not_for_the_sandbox"
    gateway.client_reset()
    with pytest.raises(gateway.GatewayRejected) as caught:
        session_create()
    assert caught.value.http_status == 401


def test_a_key_still_in_use_is_waited_for_within_the_budget(sandbox: SandboxServer) -> None:
    sandbox.configure(api_latency_min=1.5, api_latency_max=1.5)
    barrier = threading.Barrier(2)

    def create() -> Any:
        barrier.wait(5)
        return session_create()

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(create) for _ in range(2)]
        sessions = [f.result(20) for f in futures]
    assert sessions[0] == sessions[1]


def test_a_key_still_in_use_when_the_budget_ends_is_its_own_error(
    sandbox: SandboxServer, settings: Any
) -> None:
    sandbox.configure(api_latency_min=3.0, api_latency_max=3.0)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(session_create)
        sandbox.wait_executing(idempotency_key=f"checkout:{ORDER_ID}")
        settings.STRIPE_RETRY_BUDGET = 1.0
        with pytest.raises(gateway.GatewayIdempotencyInUse) as caught:
            session_create()
        assert not isinstance(caught.value, gateway.GatewayUnavailable)
        assert first.result(10).id


def _post_until_teardown(url: str, *, data: bytes, headers: dict[str, str]) -> None:
    """Forwards a request that keeps executing at the sandbox after its test has its
    answer; the sandbox stops at teardown, before the request's scripted latency ends."""
    with contextlib.suppress(requests.ConnectionError):
        requests.post(url, data=data, headers=headers, timeout=30)


def test_a_key_in_use_after_our_own_request_was_lost_on_the_way_back_is_an_outage(
    sandbox: SandboxServer, stripe_proxy: Any, settings: Any
) -> None:
    """The first attempt reaches Stripe but its connection drops before the answer: what
    then holds the key at Stripe is our own request, hanging. Not a double-click."""
    settings.STRIPE_RETRY_BUDGET = 1.5
    sandbox.configure(api_latency_min=4.0, api_latency_max=4.0)
    in_flight = sandbox.app[SANDBOX].store.in_flight

    def rule(proxy: StripeProxy, method: str, path: str, n: int, h: Handler, body: bytes) -> bool:
        if (method, path) != ("POST", SESSIONS) or n != 1:
            return False
        headers = {k: v for k, v in h.headers.items() if k.lower() != "host"}
        forward = {"data": body, "headers": headers}
        threading.Thread(
            target=_post_until_teardown,
            args=(proxy.upstream + h.path,),
            kwargs=forward,
            daemon=True,
        ).start()
        wait_until(lambda: bool(in_flight), what="the request executing at the sandbox")
        h.drop_connection()
        return True

    proxy = stripe_proxy(rule)
    with pytest.raises(gateway.GatewayUnavailable) as caught:
        session_create()
    assert caught.value.code == "idempotency_key_in_use"
    assert proxy.seen[("POST", SESSIONS)] >= 2  # retried, and met our own request


def _answer_gateway_timeout(h: Handler) -> None:
    """What a proxy or load balancer in front of Stripe sends when it gave up waiting."""
    payload = b"<html><body><h1>504 Gateway Time-out</h1></body></html>"
    h.send_response(504)
    h.send_header("Content-Type", "text/html")
    h.send_header("Content-Length", str(len(payload)))
    h.end_headers()
    h.wfile.write(payload)


@pytest.mark.parametrize(
    ("first_answer", "expected"),
    [
        # Stripe finished with a 500: the request then holding the key is someone else's.
        ("500", gateway.GatewayIdempotencyInUse),
        # A proxy's 504: our request may still be executing behind it, holding the key.
        ("504", gateway.GatewayUnavailable),
    ],
)
def test_a_key_in_use_after_a_504_is_our_own_request_hanging_an_outage(
    sandbox: SandboxServer, stripe_proxy: Any, settings: Any, first_answer: str, expected: type
) -> None:
    """The first attempt reaches Stripe and keeps executing there; the proxy answers it
    with a 504 (or, for contrast, Stripe's 500). The retries meet 409
    idempotency_key_in_use until the budget ends: only after the 504 is that an outage."""
    settings.STRIPE_RETRY_BUDGET = 1.5
    sandbox.configure(api_latency_min=4.0, api_latency_max=4.0)
    in_flight = sandbox.app[SANDBOX].store.in_flight

    def rule(proxy: StripeProxy, method: str, path: str, n: int, h: Handler, body: bytes) -> bool:
        if (method, path) != ("POST", SESSIONS) or n != 1:
            return False
        headers = {k: v for k, v in h.headers.items() if k.lower() != "host"}
        forward = {"data": body, "headers": headers}
        threading.Thread(
            target=_post_until_teardown,
            args=(proxy.upstream + h.path,),
            kwargs=forward,
            daemon=True,
        ).start()
        wait_until(lambda: bool(in_flight), what="the request executing at the sandbox")
        if first_answer == "504":
            _answer_gateway_timeout(h)
        else:
            h.answer_500()
        return True

    proxy = stripe_proxy(rule)
    with pytest.raises(gateway.GatewayError) as caught:
        session_create()
    assert type(caught.value) is expected
    assert caught.value.code == "idempotency_key_in_use"
    assert proxy.seen[("POST", SESSIONS)] >= 2  # retried, and met the executing request


class _FirstRetry(logging.Handler):
    """Runs `action` when the gateway logs its first retry (between attempts 1 and 2)."""

    def __init__(self, action: Callable[[], object]) -> None:
        super().__init__()
        self.action: Callable[[], object] | None = action

    def emit(self, record: logging.LogRecord) -> None:
        if self.action is not None and record.getMessage().startswith("stripe call failed"):
            action, self.action = self.action, None
            action()


def test_a_key_in_use_after_a_refused_connection_is_someone_elses_request(
    sandbox: SandboxServer, settings: Any
) -> None:
    """A refused connection sent nothing: the request then holding the key is another
    one (a double-click), so the call ends as GatewayIdempotencyInUse, not an outage."""
    sandbox.configure(api_latency_min=3.0, api_latency_max=3.0)
    in_flight = sandbox.app[SANDBOX].store.in_flight
    port = closed_port()
    proxies: list[StripeProxy] = []
    logger = logging.getLogger("djangomart.payments.gateway")
    # Nothing listens on the port for the first attempt; the retries find a proxy there.
    handler = _FirstRetry(lambda: proxies.append(StripeProxy(sandbox.url, port=port)))
    logger.addHandler(handler)
    try:
        with ThreadPoolExecutor(1) as pool:
            other = pool.submit(session_create)  # the other click, straight to Stripe
            wait_until(lambda: bool(in_flight), what="the other click executing at Stripe")
            settings.STRIPE_RETRY_BUDGET = 1.5
            settings.STRIPE_API_BASE = f"http://127.0.0.1:{port}"
            gateway.client_reset()
            with pytest.raises(gateway.GatewayIdempotencyInUse) as caught:
                session_create()
            assert not isinstance(caught.value, gateway.GatewayUnavailable)
            assert proxies, "the first attempt was not refused"
            assert proxies[0].seen[("POST", SESSIONS)] >= 1
            assert other.result(10).id
    finally:
        logger.removeHandler(handler)
        for proxy in proxies:
            proxy.stop()


def _session_params() -> dict[str, Any]:
    """A session as the sandbox's own client creates it (for a proxy to answer with)."""
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
