"""The gateway watchdog must only ever end its own attempt's exchange.

An attempt can hand a connection back to the pool before it ends (here: a redirect,
whose first connection is released while the attempt goes on to the redirect target).
Another thread's attempt then takes it from the pool; when the first attempt's budget
ends, its watchdog must not shut down the socket the *other* attempt is using (the pool
releases a connection from its watchdog when it takes it back)."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from djangomart.payments import gateway


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_watchdog_does_not_shut_another_threads_attempt(stripe_settings: Any) -> None:
    b_requests: list[int] = []
    redirected = threading.Event()
    slow_started = threading.Event()

    class Slow(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            slow_started.set()
            time.sleep(3)  # A's redirect target hangs past A's budget

    slow = _Server(Slow)

    class Main(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if "cs_a" in self.path:
                self.send_response(302)
                self.send_header("Location", slow.url + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()
                redirected.set()
                return
            b_requests.append(self.client_address[1])
            time.sleep(1.5)  # B's answer: slow, but well within B's own budget
            body = b'{"id": "cs_b", "object": "checkout.session"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    main = _Server(Main)
    stripe_settings.STRIPE_API_BASE = main.url
    stripe_settings.STRIPE_CONNECT_TIMEOUT = 1.0
    stripe_settings.STRIPE_READ_TIMEOUT = 2.5
    gateway.client_reset()
    a_result: list[Any] = []

    def a() -> None:
        stripe_settings.STRIPE_RETRY_BUDGET = 1.0
        try:
            with gateway.budget():
                gateway.checkout_session_retrieve("cs_a")
        except gateway.GatewayError as exc:  # A gives up at its budget
            a_result.append(exc)

    try:
        thread_a = threading.Thread(target=a)
        thread_a.start()
        assert redirected.wait(5)
        assert slow_started.wait(5)
        # A now waits on the slow server; its first connection is back in the pool.
        # B's own budget: 10 s, plenty for a 1.5 s answer.
        stripe_settings.STRIPE_RETRY_BUDGET = 10.0
        with gateway.budget():
            session = gateway.checkout_session_retrieve("cs_b")
        thread_a.join(10)
    finally:
        main.stop()
        slow.stop()
    assert session["id"] == "cs_b"
    # B's single request should have been answered on its first attempt; A's watchdog
    # shut B's socket down at A's deadline, so B had to send it again.
    assert len(b_requests) == 1, f"B's request was sent {len(b_requests)} times"
