"""The only module that talks to Stripe, through the official SDK.

Every POST carries an idempotency key derived from our own ids, so our retries can never
create a second object. Callers must not hold database row locks while calling in here.
Results come back as plain dicts (Stripe's JSON) or our dataclasses, not SDK objects.

Time is bounded (docs/payments.md, "Talking to Stripe"): each HTTP attempt has a connect
and a read timeout (STRIPE_CONNECT_TIMEOUT, STRIPE_READ_TIMEOUT), all attempts of one
logical call share one wall-clock budget (STRIPE_RETRY_BUDGET; `budget()` makes several
calls share one) that ends well inside the web worker's timeout, and a watchdog (_Watch)
ends an attempt's whole exchange, status line, headers and body, when the budget does.
We retry ourselves (the SDK's own retries are off) so that the budget holds and so that
each kind of failure is retried as it deserves:
- an outage (connection error, timeout, 5xx, 408, 429) up to MAX_NETWORK_RETRIES times;
- 409 `idempotency_key_in_use` (another request with this key is still executing at
  Stripe, e.g. a double-click) until the budget ends, waiting for that request's answer;
- a refusal (any other 4xx) never: the same request would be refused again.
A key still in use when the budget ends is someone else's request (a double-click,
GatewayIdempotencyInUse) unless one of this call's own attempts may still be executing
at Stripe (it timed out or lost its connection after sending): then it is ours, hung,
and the call is an outage (GatewayUnavailable).
"""

import contextlib
import contextvars
import functools
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
import requests.adapters
import stripe
import urllib3
import urllib3.connection
from django.conf import settings

from djangomart.core.metrics import STRIPE_API_CALLS, STRIPE_API_LATENCY

logger = logging.getLogger(__name__)

# Outage retries per logical call (so a transient 5xx is retried twice with the same key).
MAX_NETWORK_RETRIES = 2
# Backoff between attempts: 0.5 s, 1 s, 2 s, 2 s... each with jitter (half to full).
RETRY_DELAY_FIRST = 0.5
RETRY_DELAY_MAX = 2.0
# An attempt with less time than this left in the budget would only time out.
MIN_ATTEMPT_SECONDS = 0.25
SIGNATURE_TOLERANCE = 300

T = TypeVar("T")


class GatewayError(Exception):
    """Stripe did not do what was asked. Subclasses say why: GatewayUnavailable (an
    outage), GatewayRejected (a refusal), GatewayIdempotencyInUse (still running).
    Carries Stripe's own message, code, param, HTTP status and request id when known."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.http_status = http_status
        self.request_id = request_id

    def log_fields(self) -> dict[str, Any]:
        """For `extra=` of a log line: what Stripe said, without the key or the request."""
        return {
            "stripe_error": type(self).__name__,
            "stripe_message": self.message,
            "stripe_code": self.code,
            "stripe_param": self.param,
            "stripe_status": self.http_status,
            "stripe_request_id": self.request_id,
        }


class GatewayUnavailable(GatewayError):
    """An outage: Stripe could not be reached, timed out, failed (5xx) or rate limited us
    (429), still after the retries the budget allowed. Trying later may work."""


class GatewayRejected(GatewayError):
    """A refusal (4xx): the request is invalid for Stripe (an amount under the minimum
    charge, a bad parameter, a wrong API key). Sending it again will not help."""


class GatewayNotFound(GatewayRejected):
    """Stripe does not know the object (404 `resource_missing`)."""


class GatewayIdempotencyInUse(GatewayError):
    """Another request with the same idempotency key is still executing at Stripe (409
    `idempotency_key_in_use`) and did not finish within the budget. Not an outage and
    never a reason to cancel: that other request will get the answer."""


# Wall-clock deadline (time.monotonic()) of the logical call being made in this context.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "stripe_deadline", default=None
)


@dataclass
class _CallState:
    """What the HTTP attempts of the current logical call (one _call) left behind."""

    # An attempt's request may have reached Stripe without its answer reaching us (a
    # read timeout, a connection lost after sending, a 504): it may still be executing.
    maybe_executing: bool = False


_call_state: contextvars.ContextVar[_CallState | None] = contextvars.ContextVar(
    "stripe_call_state", default=None
)


@contextmanager
def budget() -> Iterator[float]:
    """A deadline of STRIPE_RETRY_BUDGET seconds from now for every Stripe call made
    inside the block (one logical operation made of several calls, e.g. creating a
    session and expiring it again); a budget opened inside another keeps the outer,
    earlier deadline."""
    outer = _deadline.get()
    deadline = time.monotonic() + float(settings.STRIPE_RETRY_BUDGET)
    if outer is not None:
        deadline = min(deadline, outer)
    token = _deadline.set(deadline)
    try:
        yield deadline
    finally:
        _deadline.reset(token)


def _attempt_timeouts() -> tuple[float, float]:
    """(connect, read) for the next HTTP attempt: the configured timeouts, cut to what is
    left of the budget."""
    connect = float(settings.STRIPE_CONNECT_TIMEOUT)
    read = float(settings.STRIPE_READ_TIMEOUT)
    deadline = _deadline.get()
    if deadline is not None:
        left = max(0.05, deadline - time.monotonic())
        connect, read = min(connect, left), min(read, left)
    return connect, read


def _may_be_executing(exc: requests.exceptions.RequestException) -> bool:
    """Whether a failed HTTP attempt's request may have reached Stripe (and so may still
    be executing there). Not when the connection was never made: refused, unresolvable,
    a connect timeout, a failed TLS handshake. Urllib3 reports a failure to connect as
    MaxRetryError(NewConnectionError / ConnectTimeoutError); a connection lost after the
    request was sent is a ProtocolError."""
    if isinstance(
        exc,
        requests.exceptions.ConnectTimeout
        | requests.exceptions.SSLError
        | requests.exceptions.ProxyError,
    ):
        return False
    if isinstance(exc, requests.exceptions.Timeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        cause = exc.args[0] if exc.args else None
        if isinstance(cause, urllib3.exceptions.MaxRetryError):
            return not isinstance(cause.reason, urllib3.exceptions.ConnectTimeoutError)
        return True
    return False  # an invalid URL or the like: nothing was sent


def _maybe_executing_note() -> None:
    state = _call_state.get()
    if state is not None:
        state.maybe_executing = True


class _Watch:
    """The watchdog of one HTTP attempt: the connections it used, and whether the budget
    ran out before the exchange ended. Socket timeouts bound each wait for bytes, not
    the exchange: a status line, headers or body arriving a few bytes at a time would
    hold the call as long as the server likes. So when the budget ends the watchdog
    shuts down the sockets the attempt still holds (not one already back in the pool,
    which another thread may be using), which wakes the blocked read (shutdown does so
    reliably on Linux; close does not) and fails the request."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.connections: list[urllib3.connection.HTTPConnection] = []
        self.fired = False
        self.ended = False

    def register(self, conn: urllib3.connection.HTTPConnection) -> None:
        with self.lock:
            conn._watched_by = self  # type: ignore[attr-defined]
            if not any(c is conn for c in self.connections):
                self.connections.append(conn)
            if self.fired and not self.ended:
                # Fired while this connection was still connecting.
                _connection_shutdown(conn)

    def release(self, conn: urllib3.connection.HTTPConnection) -> None:
        """The connection went back to the pool (its answer was read), where another
        thread's attempt may take it: this watchdog must not shut it any more."""
        with self.lock:
            self.connections = [c for c in self.connections if c is not conn]
            if getattr(conn, "_watched_by", None) is self:
                conn._watched_by = None  # type: ignore[attr-defined]

    def fire(self) -> None:
        with self.lock:
            if self.ended:
                return
            self.fired = True
            for conn in self.connections:
                if getattr(conn, "_watched_by", None) is self:
                    _connection_shutdown(conn)

    def end(self) -> bool:
        """Ends the watch (a late timer then does nothing); whether it fired."""
        with self.lock:
            self.ended = True
            return self.fired


_watch: contextvars.ContextVar[_Watch | None] = contextvars.ContextVar("stripe_watch", default=None)


def _connection_shutdown(conn: urllib3.connection.HTTPConnection) -> None:
    # While TLS is being negotiated conn.sock is not set yet: the plain socket is.
    sock = conn.sock or getattr(conn, "_watched_raw", None)
    # An SSLTransport (TLS through an HTTPS proxy) wraps its socket.
    raw = sock if isinstance(sock, socket.socket) else getattr(sock, "socket", None)
    if not isinstance(raw, socket.socket):
        return
    # Pool checkouts test is_connected: never hand this connection out again.
    conn._watchdog_shut = True  # type: ignore[attr-defined]
    # The plain socket's shutdown, also for an SSLSocket: SSLSocket.shutdown would drop
    # its SSL object under the thread reading with it. The TLS read then sees EOF.
    with contextlib.suppress(OSError):  # already closed by the exchange itself
        socket.socket.shutdown(raw, socket.SHUT_RDWR)


class _WatchedConnectionMixin:
    """Registers the connection with the current attempt's watchdog whenever it is
    used: once its socket exists (before the TLS handshake), on connect, and on every
    request and response, so that a keep-alive connection reused from the pool is
    watched too. The pool releases it from that watchdog when it takes it back."""

    _watchdog_shut = False
    _watched_by: "_Watch | None" = None
    _watched_raw: socket.socket | None = None

    def _watch_register(self) -> None:
        watch = _watch.get()
        if watch is not None:
            watch.register(self)  # type: ignore[arg-type]

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        self._watched_raw = sock
        self._watch_register()
        return sock

    def connect(self) -> None:
        self._watchdog_shut = False
        super().connect()  # type: ignore[misc]
        self._watch_register()

    def request(self, *args: Any, **kwargs: Any) -> None:
        self._watch_register()
        super().request(*args, **kwargs)  # type: ignore[misc]

    def getresponse(self) -> Any:
        self._watch_register()
        return super().getresponse()  # type: ignore[misc]

    @property
    def is_connected(self) -> bool:
        return not self._watchdog_shut and bool(super().is_connected)  # type: ignore[misc]


class _WatchedHTTPConnection(_WatchedConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _ReleasingPoolMixin:
    """A connection put back in the pool belongs to no attempt's watchdog any more."""

    def _put_conn(self, conn: Any) -> None:
        watch = getattr(conn, "_watched_by", None)
        if watch is not None:
            watch.release(conn)
        super()._put_conn(conn)  # type: ignore[misc]


class _WatchedHTTPConnectionPool(_ReleasingPoolMixin, urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(_ReleasingPoolMixin, urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPConnectionPool, "https": _WatchedHTTPSConnectionPool}


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    """Requests' adapter with connection pools whose connections the watchdog knows."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> urllib3.PoolManager:
        manager: urllib3.PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


class _BudgetedSession(requests.Session):
    """The SDK's HTTP session, with every request's timeouts taken from the settings and
    the current budget (the SDK's RequestsClient would use one fixed timeout), the
    whole exchange (status line, headers, body) ended by a watchdog when the budget
    does, and noting for _call whether a failed attempt may still be executing at
    Stripe."""

    def __init__(self) -> None:
        super().__init__()
        adapter = _WatchedAdapter()
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["timeout"] = _attempt_timeouts()
        deadline = _deadline.get()
        if deadline is None:
            return self._attempt(method, url, *args, **kwargs)
        watch = _Watch()
        token = _watch.set(watch)
        # As _attempt_timeouts: an attempt gets at least a moment.
        timer = threading.Timer(max(0.05, deadline - time.monotonic()), watch.fire)
        timer.daemon = True
        timer.start()
        try:
            # With stream=False (the SDK's calls) the body is read in here too.
            response = self._attempt(method, url, *args, **kwargs)
        except Exception as exc:
            if watch.end():
                raise _budget_spent() from exc
            raise
        finally:
            timer.cancel()
            _watch.reset(token)
        if watch.end():
            # The shut-down socket ended the answer early (a body read to EOF).
            response.close()
            raise _budget_spent()
        return response

    def _attempt(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        try:
            response = super().request(method, url, *args, **kwargs)
        except requests.exceptions.RequestException as exc:
            if _may_be_executing(exc):
                _maybe_executing_note()
            raise
        if response.status_code == 504:
            # A gateway in front of Stripe gave up waiting for it: like our own read
            # timeout, the request may still be executing behind it.
            _maybe_executing_note()
        return response


def _budget_spent() -> requests.exceptions.ReadTimeout:
    """The watchdog cut the exchange: a read timeout for the SDK (an outage), and, as
    for any read timeout, the request may still be executing at Stripe."""
    _maybe_executing_note()
    return requests.exceptions.ReadTimeout("no answer within STRIPE_RETRY_BUDGET")


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str


@dataclass(frozen=True)
class CheckoutLine:
    name: str
    unit_amount: int
    quantity: int


# Stripe's limit for a line item's product_data.name, in characters. The shop's names
# ("<product> <variant label>") can be longer; the order keeps the full one.
LINE_ITEM_NAME_MAX = 250


def _line_item_name(name: str) -> str:
    if len(name) <= LINE_ITEM_NAME_MAX:
        return name
    return name[: LINE_ITEM_NAME_MAX - 1].rstrip() + "\N{HORIZONTAL ELLIPSIS}"


@functools.cache
def _client() -> stripe.StripeClient:
    options: dict[str, Any] = {
        # Our own retries (_call) keep the budget; the SDK's would not.
        "max_network_retries": 0,
        "http_client": stripe.RequestsClient(session=_BudgetedSession()),
    }
    if settings.STRIPE_API_BASE:
        options["base_addresses"] = {"api": settings.STRIPE_API_BASE}
    return stripe.StripeClient(settings.STRIPE_SECRET_KEY, **options)


def client_reset() -> None:
    """Forget the cached client (after settings changed, in tests)."""
    _client.cache_clear()


def _translate(exc: stripe.StripeError) -> GatewayError:
    """Stripe's error as ours: an outage, a key in use, a missing object or a refusal."""
    error_object = exc.error
    code = exc.code or (error_object.code if error_object is not None else None)
    param = getattr(exc, "param", None) or (
        error_object.param if error_object is not None else None
    )
    status = exc.http_status
    fields: dict[str, Any] = {
        "code": code,
        "param": param,
        "http_status": status,
        "request_id": exc.request_id,
    }
    message = exc.user_message or str(exc) or type(exc).__name__
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
        return GatewayUnavailable(message, **fields)
    if status == 409:
        if code == "idempotency_key_in_use":
            return GatewayIdempotencyInUse(message, **fields)
        return GatewayUnavailable(message, **fields)  # a conflict Stripe asks us to retry
    if isinstance(exc, stripe.APIError) and (
        status is None or status >= 500 or status < 400 or status == 408
    ):
        # 5xx, 408 (Stripe or a proxy timed out waiting for our request), or an answer
        # that is not Stripe's JSON (a proxy's HTML page).
        return GatewayUnavailable(message, **fields)
    if status == 404 and code == "resource_missing":
        return GatewayNotFound(message, **fields)
    return GatewayRejected(message, **fields)


def _retryable(error: GatewayError, exc: stripe.StripeError, outage_retries: int) -> bool:
    if isinstance(error, GatewayIdempotencyInUse):
        return True  # bounded by the budget only: we wait for the other request
    if not isinstance(error, GatewayUnavailable) or outage_retries >= MAX_NETWORK_RETRIES:
        return False
    if isinstance(exc, stripe.APIConnectionError):
        return exc.should_retry  # not for a certificate error
    # Stripe may say that a retry would be a no-op (or is safe, e.g. a lock timeout).
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    return headers.get("stripe-should-retry") != "false"


def _call(operation: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Runs one logical Stripe call within its budget, retrying as the module docstring
    says. Every attempt sends the same arguments, so POSTs keep their idempotency key and
    identical parameters. Raises a GatewayError subclass. Counted and timed as
    `operation` (docs/operations.md), retries included: what the caller waited for."""
    state = _CallState()
    token = _call_state.set(state)
    started = time.monotonic()
    outcome = "error"
    try:
        with budget() as deadline:
            result = _attempts(deadline, state, fn, *args, **kwargs)
        outcome = "ok"
        return result
    except GatewayError as exc:
        outcome = _OUTCOMES.get(type(exc), "error")
        raise
    finally:
        _call_state.reset(token)
        STRIPE_API_CALLS.labels(operation, outcome).inc()
        STRIPE_API_LATENCY.labels(operation).observe(time.monotonic() - started)


_OUTCOMES: dict[type[GatewayError], str] = {
    GatewayUnavailable: "unavailable",
    GatewayRejected: "refused",
    GatewayNotFound: "not_found",
    GatewayIdempotencyInUse: "in_use",
}


def _attempts(
    deadline: float, state: _CallState, fn: Callable[..., T], *args: Any, **kwargs: Any
) -> T:
    outage_retries = 0
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn(*args, **kwargs)
        except stripe.StripeError as exc:
            error, cause = _translate(exc), exc
        delay = min(RETRY_DELAY_FIRST * 2 ** (attempt - 1), RETRY_DELAY_MAX)
        delay *= random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not cryptography)
        in_time = time.monotonic() + delay + MIN_ATTEMPT_SECONDS < deadline
        if not (in_time and _retryable(error, cause, outage_retries)):
            if isinstance(error, GatewayIdempotencyInUse) and state.maybe_executing:
                # What is still executing at Stripe may be our own attempt whose answer
                # never came: a hung Stripe, not someone else's request. After answers
                # (a 500, a 429) or a refused connection, it is someone else's.
                error = GatewayUnavailable(error.message, code=error.code,
                                           http_status=error.http_status,
                                           request_id=error.request_id)  # fmt: skip
            raise error from cause
        if isinstance(error, GatewayUnavailable):
            outage_retries += 1
        logger.info(
            "stripe call failed; retrying with the same arguments",
            extra={"attempt": attempt, "retry_in": round(delay, 2), **error.log_fields()},
        )
        time.sleep(delay)


def checkout_session_create(
    *,
    order_id: str,
    email: str,
    currency: str,
    lines: Sequence[CheckoutLine],
    success_url: str,
    cancel_url: str,
    expires_at: int,
) -> CheckoutSession:
    """Creates the Checkout Session for an order; idempotent per order (the same order
    must always be sent with the same parameters, `expires_at` included)."""
    params: dict[str, Any] = {
        "mode": "payment",
        "client_reference_id": order_id,
        "customer_email": email,
        "metadata": {"order_id": order_id},
        "payment_intent_data": {"metadata": {"order_id": order_id}},
        "line_items": [
            {
                "quantity": line.quantity,
                "price_data": {
                    "currency": currency,
                    "unit_amount": line.unit_amount,
                    "product_data": {"name": _line_item_name(line.name)},
                },
            }
            for line in lines
        ],
        "success_url": success_url,
        "cancel_url": cancel_url,
        "expires_at": expires_at,
    }
    session = _call(
        "checkout.sessions.create",
        _client().v1.checkout.sessions.create,
        params=params,
        options={"idempotency_key": f"checkout:{order_id}"},
    )
    # A hosted (mode=payment) session always has its URL.
    return CheckoutSession(id=session.id, url=session.url or "")


def checkout_session_expire(session_id: str) -> dict[str, Any]:
    """Expires an open session so that nobody can pay it (an expired or complete one is
    left alone) and returns the session as Stripe left it: `expired`, or `complete` when
    the customer paid (or submitted a delayed payment) first. All calls share one budget."""
    with budget():
        session = _call(
            "checkout.sessions.retrieve", _client().v1.checkout.sessions.retrieve, session_id
        )
        if session.status != "open":
            return session.to_dict()
        try:
            expired = _call(
                "checkout.sessions.expire",
                _client().v1.checkout.sessions.expire,
                session_id,
                options={"idempotency_key": f"checkout-expire:{session_id}"},
            )
        except GatewayRejected as exc:
            if isinstance(exc, GatewayNotFound):
                raise
            # Stripe expires open sessions only: the customer completed it between the
            # two calls. What it is now is the answer.
            session = _call(
                "checkout.sessions.retrieve", _client().v1.checkout.sessions.retrieve, session_id
            )
            if session.status == "open":
                raise
            return session.to_dict()
        return expired.to_dict()


def checkout_session_retrieve(session_id: str) -> dict[str, Any]:
    session = _call(
        "checkout.sessions.retrieve", _client().v1.checkout.sessions.retrieve, session_id
    )
    return session.to_dict()


def payment_intent_retrieve(intent_id: str) -> dict[str, Any]:
    """A PaymentIntent as Stripe's JSON: the sync reads it when a Checkout Session stays
    complete and unpaid (a delayed method), because Stripe leaves such a session
    complete/unpaid whether the bank debit is still processing or already failed."""
    intent = _call("payment_intents.retrieve", _client().v1.payment_intents.retrieve, intent_id)
    return intent.to_dict()


def refund_create(
    *,
    refund_id: str,
    order_id: str,
    payment_intent_id: str,
    amount: int,
    reason: str | None,
) -> dict[str, Any]:
    """Asks Stripe to refund `amount` of a PaymentIntent; idempotent per refund row
    (`refund:<our refund uuid>`, the same parameters on every retry). Our ids travel in
    the refund's metadata, so that its webhook events find our row even when the answer
    to this call was lost. Raises GatewayRejected with Stripe's code (`charge_disputed`,
    `amount_too_large`, `charge_already_refunded`...) on a refusal."""
    params: dict[str, Any] = {
        "payment_intent": payment_intent_id,
        "amount": amount,
        "metadata": {"refund_id": refund_id, "order_id": order_id},
    }
    if reason:
        params["reason"] = reason
    refund = _call(
        "refunds.create",
        _client().v1.refunds.create,
        params=params,
        options={"idempotency_key": f"refund:{refund_id}"},
    )
    return refund.to_dict()


def refund_retrieve(stripe_refund_id: str) -> dict[str, Any]:
    refund = _call("refunds.retrieve", _client().v1.refunds.retrieve, stripe_refund_id)
    return refund.to_dict()


# Pages of Stripe lists we read before giving up on one listing (100 objects a page).
MAX_LIST_PAGES = 1000


def refunds_list(payment_intent_id: str) -> list[dict[str, Any]]:
    """Every refund of a PaymentIntent, newest first (all pages; each page is one call
    with its own budget). `charge.refunded` carries no list of refunds since API version
    2022-11-15, so this is how a missing refund event is made up for."""
    refunds: list[dict[str, Any]] = []
    params: dict[str, Any] = {"payment_intent": payment_intent_id, "limit": 100}
    for _ in range(MAX_LIST_PAGES):
        page = _call("refunds.list", _client().v1.refunds.list, params=params)
        data = [item.to_dict() for item in page.data]
        refunds.extend(data)
        if not page.has_more or not data:
            return refunds
        params = {**params, "starting_after": data[-1]["id"]}
    raise GatewayUnavailable(f"More than {MAX_LIST_PAGES} pages of refunds.")


@dataclass(frozen=True)
class EventsPage:
    events: list[dict[str, Any]]  # newest first, as Stripe lists them
    has_more: bool


def events_page(
    *, types: Sequence[str], created_gte: int, starting_after: str | None = None
) -> EventsPage:
    """One page (up to 100) of GET /v1/events: events of `types` (at most 20, Stripe's
    limit) created at or after `created_gte` (unix seconds), newest first; the next
    page starts after the last event of this one. Each event comes rendered in the API
    version it was created with, exactly as its webhook delivery would carry it."""
    if not 1 <= len(types) <= 20:
        raise ValueError("GET /v1/events takes 1 to 20 types.")
    params: dict[str, Any] = {
        "types": list(types),
        "created": {"gte": created_gte},
        "limit": 100,
    }
    if starting_after:
        params["starting_after"] = starting_after
    page = _call("events.list", _client().v1.events.list, params=params)
    # for_json: Stripe's decimal strings stay strings, as in the JSON a webhook carries.
    events = [item.to_dict(for_json=True) for item in page.data]
    return EventsPage(events=events, has_more=page.has_more)


class SignatureError(Exception):
    """The payload is not signed by any configured secret within the tolerance."""


def webhook_payload_verify(payload: bytes, signature_header: str, secrets: Sequence[str]) -> None:
    """Checks Stripe's signature against every configured secret (rotation: any one may
    sign), with a 300 s tolerance both ways: the SDK refuses old timestamps, and we
    also refuse ones from the future."""
    if not signature_header or not secrets:
        raise SignatureError("missing signature or no configured secret")
    timestamps = [part[2:] for part in signature_header.split(",") if part.strip().startswith("t=")]
    try:
        timestamp = int(timestamps[0].strip())
    except (IndexError, ValueError):
        raise SignatureError("malformed signature header") from None
    if timestamp > time.time() + SIGNATURE_TOLERANCE:
        raise SignatureError("timestamp is in the future")
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(
                payload, signature_header, secret, SIGNATURE_TOLERANCE
            )
            return
        except stripe.SignatureVerificationError:
            continue
        except UnicodeDecodeError:
            raise SignatureError("the body is not UTF-8, so Stripe did not sign it") from None
    raise SignatureError("no configured secret matches")
