"""The web tier's gunicorn worker (gunicorn.conf.py, docs/deployment.md "Production
configuration"): gunicorn's threaded worker, changed so that a client that holds its
connection open, sends nothing, sends its request slowly or never closes its side after
the answer, takes no thread and does not stop the worker's event loop (issue 9).

Gunicorn's own workers all wait on such a client. The sync worker serves one connection
at a time: it blocks on a request that does not come until the master kills it
(WEB_TIMEOUT), and after each answer it waits up to 2 s for the client to close
(gunicorn.util.close_graceful). The gthread worker of gunicorn 24 and later (27 is
pinned: this class builds on its internals) hands each new connection to a pool thread
that waits up to 5 s for the first byte, then reads the rest of the request with no
time limit, and runs that same 2 s wait on its event loop, where it stops every other
connection of the worker. So this worker:

- keeps a connection in the event loop, holding no thread, until its whole request has
  arrived: the head and, when it has a Content-Length, the body, up to
  BUFFERED_REQUEST_MAX bytes (beyond that, or chunked, or behind `Expect: 100-continue`,
  the thread reads the rest). The client has WEB_READ_TIMEOUT seconds for that from the
  connection's accept, or on a kept-alive connection from the first byte of its next
  request; then the connection is closed. An idle kept-alive connection is closed after
  gunicorn's `keepalive`, as before;
- bounds what a thread reads of one request (the rest of a large head or body) by
  WEB_READ_TIMEOUT in total, and each write of the answer by WEB_READ_TIMEOUT;
- waits for the client's side of a closed connection to close in the event loop, never
  blocking it;
- gives the master, as its heartbeat, the start of its oldest request in progress
  (from its parsed head), so
  that a request running longer than WEB_TIMEOUT gets its worker killed as the sync
  worker's did (settings.py bounds the Stripe calls of a request against it), and logs
  where each request it was serving was stuck before it dies.

Gunicorn's pull request 3635 proposes the first point upstream. TLS and HTTP/2 are not
supported: TLS ends at the proxy, and bytes read by the event loop are plain HTTP/1.
"""

import errno
import os
import selectors
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from gunicorn.http.errors import NoMoreData
from gunicorn.workers.gthread import TConn, ThreadWorker

# The most the event loop buffers for one request before a thread takes it: a request
# head and an API or webhook body fit, and a worker's full connection table
# (worker_connections, 1000) holds at most 64 MiB.
BUFFERED_REQUEST_MAX = 64 * 1024
# gunicorn.util.close_graceful's: how long a closed connection waits for the client's
# FIN and how much it reads meanwhile, so that unread request bytes do not make the
# kernel reset the connection under the end of the answer.
LINGER_SECONDS = 2.0
LINGER_DRAIN_MAX = 64 * 1024
DEFAULT_READ_TIMEOUT = 10.0
ACCEPT_PAUSE = 0.5  # seconds without accepting after running out of file descriptors


def read_timeout() -> float:
    """WEB_READ_TIMEOUT, in seconds."""
    value = os.environ.get("WEB_READ_TIMEOUT", str(DEFAULT_READ_TIMEOUT))
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= 300:
        raise RuntimeError(
            f"WEB_READ_TIMEOUT={value!r}: give a number of seconds, more than 0 and at most 300."
        )
    return seconds


def request_needs(received: bytes | bytearray) -> int | None:
    """How many bytes a request that begins with `received` needs before a thread can
    take it without waiting for the client: None while its head has not ended, 0 to
    hand it over now (a head with bare line feeds, a chunked body, `Expect`, no body or
    one the parser refuses, or BUFFERED_REQUEST_MAX reached), else the head and its
    Content-Length body. Only when to hand over is decided here; whether the request is
    valid is gunicorn's parser's call, so anything this does not recognise is handed
    over at once."""
    if len(received) >= BUFFERED_REQUEST_MAX:
        return 0
    end = received.find(b"\r\n\r\n")
    if received.find(b"\n\n", 0, None if end < 0 else end) >= 0:
        return 0  # a head with bare line feeds: the parser refuses it or reads it
    if end < 0:
        return None
    lengths = []
    for line in bytes(received[:end]).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.lower()
        if name in (b"transfer-encoding", b"expect"):
            # Chunked bodies are read by the thread; a client that expects
            # 100 Continue sends its body only once the thread has answered that.
            return 0
        if name == b"content-length":
            lengths.append(value.strip())
    if len(lengths) != 1:
        return 0  # no body, or one the parser refuses
    length = lengths[0]
    if not length.isdigit() or len(length) > 18:
        return 0
    return end + 4 + int(length)


def request_arrived(received: bytes | bytearray) -> bool:
    """Whether a thread can take a connection that has received these bytes of its next
    request without waiting for the client (request_needs)."""
    needed = request_needs(received)
    return needed is not None and len(received) >= needed


def _reads_bound(unreader: Any, deadline: Callable[[], float], per_wait: float) -> None:
    """Bounds everything the thread reads of one request (the rest of its head, its
    body) by `deadline()`, not only each recv(): a client that sends a byte every few
    seconds would otherwise hold the thread, and the request's heartbeat, for as long
    as it likes. Past it, the read raises gunicorn's NoMoreData (an OSError): for a head,
    gunicorn closes the connection and logs it at debug level, as a client that went
    away (a socket timeout would be an ERROR with a traceback per slow client); for a
    body, the webhook answers 400 `incomplete_body`, the API 400 `bad_request`
    (djangomart.core.middleware). Installed once per connection: its parser, and so its
    unreader, serves every request of a kept-alive connection."""
    sock = unreader.sock
    chunk = unreader.chunk

    def bounded_chunk(size_hint: int | None = None) -> bytes:
        left = deadline() - time.monotonic()
        if left <= 0:
            raise NoMoreData(b"")
        sock.settimeout(min(left, per_wait))
        try:
            return chunk(size_hint)  # type: ignore[no-any-return]
        except TimeoutError:
            raise NoMoreData(b"") from None
        finally:
            sock.settimeout(per_wait)  # writing the answer waits per_wait, not what is left

    unreader.chunk = bounded_chunk


class _Connection(TConn):  # type: ignore[misc]
    """A client connection whose next request the event loop may have begun reading."""

    def __init__(self, worker: "WebWorker", *args: Any) -> None:
        super().__init__(*args)
        self.worker = worker
        self.received = bytearray()
        self.read_deadline = 0.0
        self.reads_bound = False
        self._request_reset()

    def _request_reset(self) -> None:
        # What arrived() learnt of the request being received: the bytes it needs once
        # its head has ended, and how far it looked.
        self.needed: int | None = None
        self.scanned = 0

    def arrived(self) -> bool:
        """request_arrived() for self.received, looking at each byte a bounded number of
        times however the request trickles in (a head of thousands of tiny lines sent
        a byte at a time must not cost the event loop a scan of the whole head per
        byte): the head is parsed once, when it has ended."""
        received = self.received
        if self.needed is None:
            start = max(0, self.scanned - 3)  # a head end may straddle two reads
            self.scanned = len(received)
            ended = received.find(b"\n\n", start) >= 0 or received.find(b"\r\n\r\n", start) >= 0
            # Not before its end, however many lines it has: gunicorn's parser waits for
            # the end of a head before it counts its fields.
            if not (ended or len(received) >= BUFFERED_REQUEST_MAX):
                return False
            needed = request_needs(received)
            self.needed = 0 if needed is None else needed
        return len(received) >= self.needed or len(received) >= BUFFERED_REQUEST_MAX

    def init(self) -> None:
        # Runs in the thread before each request (gunicorn made the socket blocking
        # without a timeout just before).
        super().init()
        self.sock.settimeout(self.worker.read_timeout)
        self.read_deadline = time.monotonic() + self.worker.read_timeout
        if not self.reads_bound:
            _reads_bound(self.parser.unreader, lambda: self.read_deadline, self.worker.read_timeout)
            self.reads_bound = True
        if self.received:
            self.parser.unreader.unread(bytes(self.received))
            self.received.clear()
        self._request_reset()

    def close(self, graceful: bool = False) -> None:
        if graceful:
            self.worker.close_lingering(self.sock)
        else:
            super().close()


@dataclass
class _Lingering:
    sock: socket.socket
    deadline: float
    drained: int = 0
    closed: bool = False


class WebWorker(ThreadWorker):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout = read_timeout()
        self.lingering: deque[_Lingering] = deque()
        self.accept_paused_until = 0.0
        # Thread ident -> when its request started (time.monotonic()).
        self.running: dict[int, float] = {}
        # Reentrant: the master's SIGABRT may interrupt the event loop inside notify(),
        # and handle_abort() runs on that same thread.
        self.running_lock = threading.RLock()

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        super().check_config(cfg, log)
        if cfg.timeout and read_timeout() >= cfg.timeout:
            # Reading a large body counts in a request's heartbeat (handle_request).
            raise RuntimeError(
                f"WEB_READ_TIMEOUT ({read_timeout():g} s) must be less than WEB_TIMEOUT "
                f"({cfg.timeout} s): a client's slow body would get the worker killed."
            )
        if cfg.is_ssl or any(protocol != "h1" for protocol in cfg.http_protocols):
            raise RuntimeError(
                "djangomart.core.web_worker serves plain HTTP/1.1 only: end TLS at the "
                "proxy (docs/deployment.md)."
            )

    def set_accept_enabled(self, enabled: bool) -> None:
        # gthread's loop enables accepting whenever it has room for connections; not
        # while a lack of file descriptors pauses it (accept()).
        if enabled and time.monotonic() < self.accept_paused_until:
            return
        super().set_accept_enabled(enabled)

    # -- Connections wait in the event loop until their request has arrived --------

    def accept(self, listener: socket.socket) -> None:
        try:
            sock, address = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                # Out of file descriptors: the connection waits in the listen backlog.
                # Accepting stops for a moment (the listener would stay readable and the
                # event loop spin), and the oldest lingering close, which only waits for
                # a FIN, gives its descriptor back.
                self.log.warning("Cannot accept connections for %.1f s: %s", ACCEPT_PAUSE, exc)
                self.accept_paused_until = time.monotonic() + ACCEPT_PAUSE
                self.set_accept_enabled(False)
                if self.lingering:
                    self.linger_end(self.lingering.popleft())
                return
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = _Connection(self, self.cfg, sock, address, listener.getsockname())
        # Under load a connection's request is often there already (it arrived while the
        # connection waited to be accepted): then it goes to a thread at once, as with
        # gunicorn's gthread, without a round through the event loop.
        self.request_read(conn, waiting=False)

    def await_request(self, conn: _Connection) -> None:
        conn.sock.setblocking(False)
        # gunicorn's murder_pending() closes it at this deadline; every entry gets the
        # same delay, so the deque stays in deadline order as it requires.
        conn.timeout = time.monotonic() + self.read_timeout
        self.pending_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_request_bytes, conn))

    def on_request_bytes(self, conn: _Connection, _sock: object) -> None:
        self.request_read(conn, waiting=True)

    def request_read(self, conn: _Connection, *, waiting: bool) -> None:
        """Reads what has come of the connection's request; a whole request goes to a
        thread, a part waits in the event loop (`waiting`: it is there already)."""
        data: bytes | None
        try:
            data = conn.sock.recv(BUFFERED_REQUEST_MAX - len(conn.received))
        except (BlockingIOError, InterruptedError):
            data = None
        except OSError:
            data = b""
        if data:
            conn.received += data
        if data is None or (data and not conn.arrived()):
            if not waiting:
                self.await_request(conn)
            return
        if waiting:
            self.poller.unregister(conn.sock)
            self.pending_conns.remove(conn)
        if not data:
            # Gone before its request was whole: nothing to answer.
            self.nr_conns -= 1
            conn.close()
            return
        conn.data_ready = True  # gunicorn's thread then waits for no first byte
        super().enqueue_req(conn)

    def on_client_socket_readable(self, conn: _Connection, client: socket.socket) -> None:
        """A kept-alive connection's next request has begun."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self.request_read(conn, waiting=False)

    def enqueue_req(self, conn: _Connection) -> None:
        """gunicorn calls this for a kept-alive connection whose next request the thread
        read ahead, in part or whole, with the previous one."""
        conn.received += conn.parser.unreader.take_buffered()
        if conn.arrived():
            super().enqueue_req(conn)
        else:
            self.await_request(conn)

    # -- Closing never waits on the client -------------------------------------------

    def close_lingering(self, sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
            entry = _Lingering(sock, time.monotonic() + LINGER_SECONDS)
            self.poller.register(sock, selectors.EVENT_READ, partial(self.on_lingering, entry))
        except (OSError, ValueError, KeyError):
            sock.close()
            return
        self.lingering.append(entry)
        # gthread's finish_request has already stopped counting this connection; its
        # socket is still open, so it counts against worker_connections until closed.
        self.nr_conns += 1

    def on_lingering(self, entry: _Lingering, _sock: object) -> None:
        try:
            data = entry.sock.recv(LINGER_DRAIN_MAX)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        entry.drained += len(data)
        if not data or entry.drained >= LINGER_DRAIN_MAX:
            self.linger_end(entry)

    def linger_end(self, entry: _Lingering) -> None:
        if not entry.closed:
            entry.closed = True
            self.poller.unregister(entry.sock)
            entry.sock.close()
            self.nr_conns -= 1

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        while self.lingering and (self.lingering[0].closed or self.lingering[0].deadline <= now):
            self.linger_end(self.lingering.popleft())

    # -- WEB_TIMEOUT still ends a stuck request ---------------------------------------

    def handle_request(self, req: Any, conn: _Connection) -> Any:
        # From the parsed head on: reading the head is bounded by WEB_READ_TIMEOUT
        # (_reads_bound) and is the client's time, not the application's.
        ident = threading.get_ident()
        with self.running_lock:
            self.running[ident] = time.monotonic()
        try:
            return super().handle_request(req, conn)
        finally:
            with self.running_lock:
                del self.running[ident]

    def notify(self) -> None:
        # The master kills a worker whose heartbeat is older than `timeout`; gunicorn's
        # heartbeat is a file's mtime set to time.monotonic() (WorkerTmp.notify).
        with self.running_lock:
            oldest = min(self.running.values(), default=None)
        if oldest is None:
            super().notify()
        else:
            os.utime(self.tmp.fileno(), (oldest, oldest))

    def handle_abort(self, sig: int, frame: object) -> None:
        """The master's SIGABRT after WORKER TIMEOUT."""
        now = time.monotonic()
        frames = sys._current_frames()
        with self.running_lock:
            running = sorted(self.running.items(), key=lambda item: item[1])
        for ident, started in running:
            stack = frames.get(ident)
            self.log.error(
                "Request still running when the worker timed out",
                extra={
                    "running_s": round(now - started, 1),
                    "stack": "".join(traceback.format_stack(stack)) if stack else "",
                },
            )
        self.alive = False
        self.cfg.worker_abort(self)
        # Not sys.exit(): interpreter shutdown would wait for the pool's threads, the
        # stuck one included, until the master's SIGKILL.
        os._exit(1)
