"""Webhook receivers for the tests: real HTTP servers on 127.0.0.1, in a thread."""

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    """Answers `failures` 500s to each event id, then 200; records every request."""

    failures: int = 0
    on_request: Callable[[], None] | None = None  # run before answering
    requests: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/djangomart"

    def accepted(self, event_id: str) -> int:
        return sum(
            1
            for r in self.requests
            if r.headers["DjangoMart-Event-Id"] == event_id and 200 <= r.status < 300
        )

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                event_id = self.headers["DjangoMart-Event-Id"]
                seen = sum(
                    1 for r in receiver.requests if r.headers["DjangoMart-Event-Id"] == event_id
                )
                status = 500 if seen < receiver.failures else 200
                receiver.requests.append(Received(dict(self.headers.items()), body, status))
                if receiver.on_request is not None:
                    receiver.on_request()
                answer = b'{"ok": true}' if status == 200 else b"temporarily broken " * 1000
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class HangingReceiver:
    """Takes connections (the kernel completes them from the listen backlog) and never
    answers."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}/hooks"

    def stop(self) -> None:
        self._socket.close()
