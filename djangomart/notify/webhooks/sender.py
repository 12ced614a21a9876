"""One POST to a receiver, bounded in time, with what came of it. No database here: a
receiver that is slow holds only the outbound_webhooks worker's thread that sends.

Two things `requests` does not do by itself, done by the connections of an attempt:
- connect to an address the URL policy checked (url_policy.endpoint_url_resolve), never
  to what a second DNS lookup answers (DNS rebinding), while the host name stays the
  Host header, the TLS SNI and the name the certificate is verified for;
- end the attempt at OUTBOUND_WEBHOOK_TOTAL_TIMEOUT: the read timeout counts from each
  byte, so a receiver trickling its answer would hold the thread for minutes.
"""

import contextlib
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, ProxyManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.connection import create_connection

from djangomart.notify.webhooks.url_policy import UrlRefused, endpoint_url_resolve

USER_AGENT = "DjangoMart-Webhooks/1.0"
RESPONSE_BODY_LIMIT = 4096  # characters of the answer kept in the attempt log


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    error: str
    body: str
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def webhook_post(*, url: str, body: bytes, headers: dict[str, str]) -> Answer:
    """POSTs `body`; never raises for what the receiver or the network does (a refused
    URL, a timeout, a reset connection are an Answer with its `error`). Redirects are
    not followed: a 3xx is a failed attempt, like any other non-2xx."""
    started = time.monotonic()
    try:
        # Again at each attempt: what the name resolves to may have changed since the
        # endpoint was saved.
        addresses = endpoint_url_resolve(url)
    except UrlRefused as exc:
        return _failed(f"URL refused: {exc}", started)
    return webhook_post_to(
        url=url, addresses=addresses, body=body, headers=headers, started=started
    )


def webhook_post_to(
    *,
    url: str,
    addresses: tuple[str, ...] | None,
    body: bytes,
    headers: dict[str, str],
    started: float | None = None,
) -> Answer:
    """webhook_post once the URL is checked: connects only to `addresses` (None: to
    what the host name resolves to), and gives up OUTBOUND_WEBHOOK_TOTAL_TIMEOUT
    seconds after `started` (a time.monotonic(); by default now)."""
    started = time.monotonic() if started is None else started
    total = settings.OUTBOUND_WEBHOOK_TOTAL_TIMEOUT
    attempt = _Attempt(addresses, ends_at=started + total)
    session = requests.Session()
    adapter = _AttemptAdapter(attempt)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    timeout = (settings.OUTBOUND_WEBHOOK_CONNECT_TIMEOUT, settings.OUTBOUND_WEBHOOK_READ_TIMEOUT)
    status_code, content, error = None, b"", ""
    try:
        with session.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
            timeout=timeout,
            allow_redirects=False,
            stream=True,  # read no more of the answer than the log keeps
        ) as response:
            status_code = response.status_code
            content = next(response.iter_content(RESPONSE_BODY_LIMIT), b"")
    except requests.Timeout as exc:
        error = f"timeout: {exc}"
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"
    except ValueError as exc:
        # A URL the libraries cannot use after all (a port past 65535, a name IDNA
        # cannot encode: UnicodeError is a ValueError): a failed attempt, never a raise
        # that would leave the delivery claimed.
        error = f"invalid URL: {type(exc).__name__}: {exc}"
    finally:
        attempt.end()
        session.close()
    if attempt.expired:
        # Even a 2xx status line is no answer if the rest of it was still on its way:
        # a body cut short by the shutdown can look complete.
        error = f"timeout: no complete answer within OUTBOUND_WEBHOOK_TOTAL_TIMEOUT ({total:g} s)"
    if error:
        return _failed(error, started)
    return Answer(
        status_code=status_code,
        error="",
        body=content.decode("utf-8", errors="replace")[:RESPONSE_BODY_LIMIT],
        duration_ms=_since(started),
    )


def _failed(error: str, started: float) -> Answer:
    return Answer(status_code=None, error=error[:2000], body="", duration_ms=_since(started))


def _since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


class _Attempt:
    """Where the connections of one attempt may go, and until when: at `ends_at` they
    are shut down, which ends at once any recv or send blocked on them."""

    def __init__(self, addresses: tuple[str, ...] | None, *, ends_at: float) -> None:
        self.addresses = addresses
        self.ends_at = ends_at
        self.expired = False
        self._lock = threading.Lock()
        self._watched: list[socket.socket] = []
        self._ended = False
        self._timer = threading.Timer(max(ends_at - time.monotonic(), 0.0), self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return self.ends_at - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        # A duplicate descriptor: shutdown(2) acts on the socket, so shutting the
        # duplicate down ends what is blocked on the original (TLS-wrapped or not, and
        # TLS wrapping detaches the original object); and only end() closes it, so the
        # timer never shuts down a descriptor number the process has given to another
        # socket since (another thread's database connection, say).
        with self._lock:
            if self._ended:
                return
            duplicate = sock.dup()
            self._watched.append(duplicate)
            if self.expired:  # the deadline passed while it connected
                _shutdown(duplicate)

    def end(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._ended = True
            for duplicate in self._watched:
                duplicate.close()
            self._watched.clear()

    def _expire(self) -> None:
        with self._lock:
            if self._ended:
                return
            self.expired = True
            for duplicate in self._watched:
                _shutdown(duplicate)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # the receiver closed it already
        sock.shutdown(socket.SHUT_RDWR)


class _AttemptConnection(HTTPConnection):
    """urllib3's connection, to the attempt's checked addresses (when it has them) and
    watched by its deadline. Bound to one attempt by _pool_classes."""

    attempt: ClassVar[_Attempt]

    def _new_conn(self) -> socket.socket:
        # Through a proxy (HTTPS_PROXY), the connection is to the proxy, which resolves
        # the receiver's name itself (docs: "Which URLs are allowed").
        if self.attempt.addresses is None or self.proxy is not None:
            sock = super()._new_conn()
        else:
            sock = self._pinned_conn(self.attempt.addresses)
        self.attempt.watch(sock)
        return sock

    def _pinned_conn(self, addresses: tuple[str, ...]) -> socket.socket:
        # Each checked address in the resolver's order, as create_connection tries a
        # name's; errors as urllib3's own _new_conn raises them, for requests to map.
        failure: OSError | None = None
        for address in addresses:
            remaining = self.attempt.remaining()
            if remaining <= 0:
                break
            timeout = self.timeout
            if isinstance(timeout, int | float):  # what requests gives: the connect timeout
                timeout = min(timeout, remaining)
            try:
                sock = create_connection(
                    (address, self.port),
                    timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except OSError as exc:
                failure = exc
                continue
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        if failure is None or isinstance(failure, TimeoutError):
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from failure
        raise NewConnectionError(
            self, f"Failed to establish a new connection: {failure}"
        ) from failure


def _pool_classes(attempt: _Attempt) -> dict[str, type[HTTPConnectionPool]]:
    """urllib3's connection pools, their connections bound to `attempt`."""

    class Connection(_AttemptConnection):
        pass

    class TLSConnection(_AttemptConnection, HTTPSConnection):
        pass

    Connection.attempt = TLSConnection.attempt = attempt

    class Pool(HTTPConnectionPool):
        ConnectionCls = Connection

    class TLSPool(HTTPSConnectionPool):
        ConnectionCls = TLSConnection

    return {"http": Pool, "https": TLSPool}


class _AttemptAdapter(HTTPAdapter):
    """requests' adapter, its connections (direct or through a proxy) those of one
    attempt."""

    def __init__(self, attempt: _Attempt) -> None:
        self._pool_classes = _pool_classes(attempt)  # before init_poolmanager runs
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, ProxyManager):  # a SOCKS one has its own connections
            manager.pool_classes_by_scheme = self._pool_classes
        return manager
