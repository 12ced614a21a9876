"""Each misbehaviour knob of the sandbox (issue 3, section 7) does what it says: real
sockets, real clocks, the official SDK, a receiver that verifies every signature.

Knobs are changed at run time through /_sandbox/config; the `sandbox` fixture starts
with Config(retry_base=0.05, seed=1) so retries are quick and the dice reproducible."""

import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import fields
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.error import URLError

import pytest
import stripe

from stripe_sandbox.config import Config
from tests.stripe_sandbox.harness import (
    API_KEY,
    WEBHOOK_SECRET,
    ControlError,
    Receiver,
    SandboxServer,
    session_params,
)

REPO = Path(__file__).resolve().parents[2]
EVENTS_PER_PAYMENT = 4  # payment_intent.created, charge.succeeded, .succeeded, session.completed
WAIT = 10.0  # upper bound for anything that should take well under a second


# -- helpers ---------------------------------------------------------------------------


def _client(sandbox: SandboxServer, retries: int = 0) -> stripe.StripeClient:
    """An SDK client that can never hang a test: 5 s socket timeout."""
    return sandbox.client(max_network_retries=retries, http_client=stripe.RequestsClient(timeout=5))


def _pay_session(sandbox: SandboxServer) -> str:
    """Creates a session and pays it with the success card: four events."""
    session = _client(sandbox).v1.checkout.sessions.create(params=session_params())
    sandbox.control(f"checkout/sessions/{session.id}/pay", {"card": "4242424242424242"})
    return session.id


def _expire_session(sandbox: SandboxServer) -> str:
    """Creates a session and expires it: exactly one event, whose id is returned."""
    client = _client(sandbox)
    session = client.v1.checkout.sessions.create(params=session_params())
    client.v1.checkout.sessions.expire(session.id)
    expired = client.v1.events.list(params={"type": "checkout.session.expired", "limit": 1})
    assert expired.data[0].data.object["id"] == session.id
    return expired.data[0].id


def _emitted(sandbox: SandboxServer) -> list[str]:
    """Event ids in emission order, from GET /v1/events (which lists newest first)."""
    events = _client(sandbox).v1.events.list(params={"limit": 100})
    assert not events.has_more
    return [event.id for event in reversed(events.data)]


def _session_ids(sandbox: SandboxServer) -> list[str]:
    sessions = _client(sandbox).v1.checkout.sessions.list(params={"limit": 100})
    return [session.id for session in sessions.data]


def _outcomes(sandbox: SandboxServer, event_id: str) -> list[tuple[int, str]]:
    return [(d["attempt"], d["outcome"]) for d in sandbox.deliveries(event=event_id)]


class FailFirst:
    """A `respond` callback: answers `status` to the first `n` requests of each event,
    then 200. With `stall`, the first request of each event sleeps that long first."""

    def __init__(self, n: int, status: int = 500, stall: float = 0.0) -> None:
        self.n, self.status, self.stall = n, status, stall
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> int:
        with self._lock:
            self.requests[event["id"]] += 1
            seen = self.requests[event["id"]]
        if seen == 1 and self.stall:
            time.sleep(self.stall)
        return self.status if seen <= self.n else 200


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# -- duplicate_rate ----------------------------------------------------------------------


def test_duplicate_rate_one_delivers_every_event_more_than_once(
    sandbox: SandboxServer, receiver: Receiver
) -> None:
    sandbox.configure(duplicate_rate=1.0)
    _pay_session(sandbox)
    sandbox.wait_idle(WAIT)
    emitted = _emitted(sandbox)
    arrivals = Counter(receiver.ids())
    assert len(emitted) == EVENTS_PER_PAYMENT
    assert receiver.bad_signatures == 0
    for event_id in emitted:
        assert arrivals[event_id] >= 2
        assert max(d["copy"] for d in sandbox.deliveries(event=event_id)) >= 1


def test_duplicate_rate_zero_delivers_every_event_exactly_once(
    sandbox: SandboxServer, receiver: Receiver
) -> None:
    sandbox.configure(duplicate_rate=0.0)
    _pay_session(sandbox)
    sandbox.wait_idle(WAIT)
    emitted = _emitted(sandbox)
    assert len(emitted) == EVENTS_PER_PAYMENT
    assert sorted(receiver.ids()) == sorted(emitted)
    assert all(d["copy"] == 0 for d in sandbox.deliveries())


# -- reorder_window ------------------------------------------------------------------------


def _arrival_and_emission_order(
    sandbox: SandboxServer, receiver: Receiver, window: float
) -> tuple[list[str], list[str]]:
    """Pays five sessions while delivery is paused, then lets the deliveries out one at a
    time, so the reorder window is the only thing that can change their order."""
    sandbox.configure(reorder_window=window, parallel_deliveries=1, paused=True)
    for _ in range(5):
        _pay_session(sandbox)
    emitted = _emitted(sandbox)
    sandbox.configure(paused=False)
    receiver.wait_for(lambda r: len(r.received) >= len(emitted), timeout=WAIT)
    sandbox.wait_idle(WAIT)
    return receiver.ids(), emitted


def test_reorder_window_shuffles_arrival_order_but_every_event_arrives(
    sandbox: SandboxServer, receiver: Receiver
) -> None:
    arrived, emitted = _arrival_and_emission_order(sandbox, receiver, window=0.3)
    assert len(emitted) == 5 * EVENTS_PER_PAYMENT
    assert sorted(arrived) == sorted(emitted)
    position = {event_id: index for index, event_id in enumerate(emitted)}
    inversions = sum(1 for before, after in pairwise(arrived) if position[before] > position[after])
    assert inversions >= 1, "arrival order equals emission order despite the reorder window"


def test_without_reorder_window_serial_deliveries_arrive_in_emission_order(
    sandbox: SandboxServer, receiver: Receiver
) -> None:
    arrived, emitted = _arrival_and_emission_order(sandbox, receiver, window=0.0)
    assert len(emitted) == 5 * EVENTS_PER_PAYMENT
    assert arrived == emitted


# -- delay_min / delay_max ---------------------------------------------------------------


def test_delivery_delay_holds_every_first_attempt_back_at_least_delay_min(
    sandbox: SandboxServer, receiver: Receiver
) -> None:
    sandbox.configure(delay_min=0.3, delay_max=0.4)
    session = _client(sandbox).v1.checkout.sessions.create(params=session_params())
    paid_at = time.monotonic()  # the events are emitted after this, during the pay call
    sandbox.control(f"checkout/sessions/{session.id}/pay", {"card": "4242424242424242"})
    receiver.wait_for(lambda r: len(r.received) >= EVENTS_PER_PAYMENT, timeout=WAIT)
    waited = [r.at - paid_at for r in receiver.received]
    assert len(waited) == EVENTS_PER_PAYMENT
    assert min(waited) >= 0.3


# -- fail_first_attempts, retries, backoff, abandonment, timeouts --------------------------


def test_fail_first_attempts_forces_failures_then_delivers_on_the_next_attempt(
    sandbox: SandboxServer, receiver: Receiver
) -> None:
    sandbox.configure(fail_first_attempts=2)
    _pay_session(sandbox)
    sandbox.wait_idle(WAIT)
    emitted = _emitted(sandbox)
    assert len(emitted) == EVENTS_PER_PAYMENT
    for event_id in emitted:
        assert _outcomes(sandbox, event_id) == [
            (1, "forced_failure"),
            (2, "forced_failure"),
            (3, "delivered"),
        ]
    # Forced failures are never sent: the endpoint sees each event once.
    assert sorted(receiver.ids()) == sorted(emitted)


def test_failed_deliveries_are_retried_with_doubling_backoff_until_delivered(
    sandbox: SandboxServer, receiver: Receiver
) -> None:
    base = 0.2
    sandbox.configure(retry_base=base, max_attempts=8)
    receiver.respond = FailFirst(3)
    event_id = _expire_session(sandbox)
    sandbox.wait_idle(WAIT)
    log = sandbox.deliveries(event=event_id)
    assert [(d["attempt"], d["outcome"], d["status"]) for d in log] == [
        (1, "failed", 500),
        (2, "failed", 500),
        (3, "failed", 500),
        (4, "delivered", 200),
    ]
    gaps = [later["at"] - earlier["at"] for earlier, later in pairwise(log)]
    for attempt, gap in enumerate(gaps, start=1):
        expected = base * 2 ** (attempt - 1)  # 0.2, 0.4, 0.8
        assert expected - 0.01 <= gap < expected + 0.2, (attempt, gaps)


def test_a_delivery_that_always_fails_is_abandoned_after_max_attempts(
    sandbox: SandboxServer, receiver: Receiver
) -> None:
    sandbox.configure(retry_base=0.02, max_attempts=3)
    receiver.respond = lambda event: 500
    event_id = _expire_session(sandbox)
    sandbox.wait_idle(WAIT)
    assert _outcomes(sandbox, event_id) == [
        (1, "failed"),
        (2, "failed"),
        (3, "failed"),
        (3, "abandoned"),
    ]
    assert receiver.ids().count(event_id) == 3


def test_an_endpoint_slower_than_delivery_timeout_is_logged_as_timeout_and_retried(
    sandbox: SandboxServer, receiver: Receiver
) -> None:
    sandbox.configure(delivery_timeout=0.2)
    receiver.respond = FailFirst(0, stall=0.6)  # the first request answers too late
    event_id = _expire_session(sandbox)
    sandbox.wait_idle(WAIT)
    log = sandbox.deliveries(event=event_id)
    assert [(d["attempt"], d["outcome"]) for d in log] == [(1, "timeout"), (2, "delivered")]
    assert log[0]["duration_ms"] >= 190


# -- parallel_deliveries -----------------------------------------------------------------


def test_parallel_deliveries_let_one_orders_events_race_each_other(
    sandbox: SandboxServer, receiver: Receiver
) -> None:
    sandbox.configure(parallel_deliveries=4)
    receiver.delay = 0.2
    _pay_session(sandbox)
    receiver.wait_for(lambda r: len(r.received) >= EVENTS_PER_PAYMENT, timeout=WAIT)
    assert receiver.max_in_flight > 1


def test_one_parallel_delivery_sends_one_event_at_a_time(
    sandbox: SandboxServer, receiver: Receiver
) -> None:
    sandbox.configure(parallel_deliveries=1)
    receiver.delay = 0.2
    _pay_session(sandbox)
    receiver.wait_for(lambda r: len(r.received) >= EVENTS_PER_PAYMENT, timeout=WAIT)
    assert receiver.max_in_flight == 1


# -- paused --------------------------------------------------------------------------------


def test_paused_delivery_lists_events_but_delivers_nothing(
    sandbox: SandboxServer, receiver: Receiver
) -> None:
    sandbox.configure(paused=True)
    _pay_session(sandbox)
    assert len(_emitted(sandbox)) == EVENTS_PER_PAYMENT
    time.sleep(0.5)
    log = sandbox.control("deliveries")
    assert receiver.received == []
    assert log["data"] == []
    assert log["pending"] == EVENTS_PER_PAYMENT


def test_unpausing_delivers_everything_held_back(
    sandbox: SandboxServer, receiver: Receiver
) -> None:
    sandbox.configure(paused=True)
    _pay_session(sandbox)
    time.sleep(0.2)
    sandbox.configure(paused=False)
    sandbox.wait_idle(WAIT)
    assert sorted(receiver.ids()) == sorted(_emitted(sandbox))
    assert sandbox.control("deliveries")["pending"] == 0


# -- api_latency ---------------------------------------------------------------------------


def test_api_latency_slows_every_sdk_call_by_at_least_the_minimum(
    sandbox: SandboxServer,
) -> None:
    sandbox.configure(api_latency_min=0.3, api_latency_max=0.35)
    client = _client(sandbox)
    started = time.monotonic()
    client.v1.checkout.sessions.list()
    assert time.monotonic() - started >= 0.3


# -- api_error_rate ------------------------------------------------------------------------


def test_api_error_rate_one_makes_the_sdk_raise_a_retryable_api_error(
    sandbox: SandboxServer,
) -> None:
    sandbox.configure(api_error_rate=1.0)
    with pytest.raises(stripe.APIError) as raised:
        _client(sandbox).v1.checkout.sessions.create(params=session_params())
    assert raised.value.http_status == 500
    assert raised.value.headers is not None
    assert raised.value.headers["Stripe-Should-Retry"] == "true"


def test_sdk_retries_through_api_errors_and_creates_exactly_one_session(
    sandbox: SandboxServer,
) -> None:
    # Seed 16 draws a 500 for the first two requests, then lets the third through.
    sandbox.configure(api_error_rate=0.5, seed=16)
    session = _client(sandbox, retries=10).v1.checkout.sessions.create(
        params=session_params(), options={"idempotency_key": "order-err-1"}
    )
    sandbox.configure(api_error_rate=0.0)
    attempts = sandbox.requests(method="POST", path="/v1/checkout/sessions")
    assert [(a["status"], a["injected_error"]) for a in attempts] == [
        (500, True),
        (500, True),
        (200, False),
    ]
    assert {a["idempotency_key"] for a in attempts} == {"order-err-1"}
    assert _session_ids(sandbox) == [session.id]


# -- api_timeout_rate / api_timeout_seconds --------------------------------------------------


def test_a_timed_out_api_request_raises_connection_error_yet_was_processed(
    sandbox: SandboxServer,
) -> None:
    sandbox.configure(api_timeout_rate=1.0, api_timeout_seconds=0.3)
    started = time.monotonic()
    with pytest.raises(stripe.APIConnectionError):
        _client(sandbox).v1.checkout.sessions.create(
            params=session_params(), options={"idempotency_key": "order-timeout-1"}
        )
    assert time.monotonic() - started >= 0.3
    sandbox.configure(api_timeout_rate=0.0)
    assert len(_session_ids(sandbox)) == 1


def test_retrying_a_timed_out_create_with_its_idempotency_key_returns_the_same_session(
    sandbox: SandboxServer,
) -> None:
    params = session_params()  # the same parameters twice, so the key replays
    sandbox.configure(api_timeout_rate=1.0, api_timeout_seconds=0.3)
    with pytest.raises(stripe.APIConnectionError):
        _client(sandbox).v1.checkout.sessions.create(
            params=params, options={"idempotency_key": "order-timeout-2"}
        )
    sandbox.configure(api_timeout_rate=0.0)
    created = _session_ids(sandbox)
    replayed = _client(sandbox).v1.checkout.sessions.create(
        params=params, options={"idempotency_key": "order-timeout-2"}
    )
    assert replayed.id == created[0]
    assert _session_ids(sandbox) == created


def test_sdk_retries_through_api_timeouts_and_creates_exactly_one_session(
    sandbox: SandboxServer,
) -> None:
    # Seed 9 drops the answer to the first request; the retry is an idempotent replay.
    sandbox.configure(api_timeout_rate=0.5, api_timeout_seconds=0.3, seed=9)
    session = _client(sandbox, retries=10).v1.checkout.sessions.create(
        params=session_params(), options={"idempotency_key": "order-timeout-3"}
    )
    assert session.last_response is not None
    assert session.last_response.headers.get("Idempotent-Replayed") == "true"
    sandbox.configure(api_timeout_rate=0.0)
    assert _session_ids(sandbox) == [session.id]


# -- runtime configuration -----------------------------------------------------------------


def test_get_config_returns_the_current_value_of_every_knob(sandbox: SandboxServer) -> None:
    sandbox.configure(duplicate_rate=0.25, delay_min=0.1, delay_max=0.2, refund_mode="pending")
    current = sandbox.control("config")
    assert set(current) == {spec.name for spec in fields(Config)}
    assert current["duplicate_rate"] == 0.25
    assert current["delay_min"] == 0.1
    assert current["delay_max"] == 0.2
    assert current["refund_mode"] == "pending"
    assert current["retry_base"] == 0.05  # the fixture's, untouched


def test_config_with_an_unknown_key_is_refused_and_changes_nothing(
    sandbox: SandboxServer,
) -> None:
    before = sandbox.control("config")
    with pytest.raises(ControlError) as refused:
        sandbox.configure(delay_min=0.5, delay_max=0.5, no_such_knob=1)
    assert refused.value.status == 400
    assert "no_such_knob" in refused.value.body["error"]["message"]
    assert sandbox.control("config") == before


def test_config_with_an_invalid_value_is_refused_and_changes_nothing(
    sandbox: SandboxServer,
) -> None:
    before = sandbox.control("config")
    with pytest.raises(ControlError) as refused:
        sandbox.configure(delay_min=0.5, delay_max=0.5, duplicate_rate=2)
    assert refused.value.status == 400
    assert "duplicate_rate" in refused.value.body["error"]["message"]
    assert sandbox.control("config") == before


# -- event resend --------------------------------------------------------------------------


def test_resending_an_event_delivers_it_again(sandbox: SandboxServer, receiver: Receiver) -> None:
    event_id = _expire_session(sandbox)
    sandbox.wait_idle(WAIT)
    assert receiver.ids() == [event_id]
    assert sandbox.control(f"events/{event_id}/resend", {}) == {"resent": event_id}
    sandbox.wait_idle(WAIT)
    assert receiver.ids() == [event_id, event_id]
    assert [d["outcome"] for d in sandbox.deliveries(event=event_id)] == [
        "delivered",
        "delivered",
    ]


# -- command line --------------------------------------------------------------------------


def test_cli_help_lists_a_flag_for_every_knob() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "stripe_sandbox", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    missing = [_flag(spec.name) for spec in fields(Config) if _flag(spec.name) not in shown]
    assert missing == []


@pytest.fixture
def cli_receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def cli_sandbox(cli_receiver: Receiver) -> Iterator[str]:
    """`python -m stripe_sandbox ... --duplicate-rate 1` as a real process; yields its URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stripe_sandbox",
            "--port",
            str(port),
            "--webhook-url",
            cli_receiver.url,
            "--webhook-secret",
            WEBHOOK_SECRET,
            "--duplicate-rate",
            "1",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_serving(f"{url}/_sandbox/config", process)
        yield url
    finally:
        process.kill()
        process.wait(10)


def _wait_until_serving(url: str, process: "subprocess.Popen[bytes]") -> None:
    deadline = time.monotonic() + 20
    while True:
        assert process.poll() is None, f"sandbox exited with {process.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (URLError, ConnectionError):
            assert time.monotonic() < deadline, "sandbox never started serving"
            time.sleep(0.05)


def test_cli_started_sandbox_serves_the_api_and_delivers_duplicates(
    cli_sandbox: str, cli_receiver: Receiver
) -> None:
    client = stripe.StripeClient(
        API_KEY, base_addresses={"api": cli_sandbox}, http_client=stripe.RequestsClient(timeout=5)
    )
    session = client.v1.checkout.sessions.create(params=session_params())
    client.v1.checkout.sessions.expire(session.id)
    cli_receiver.wait_for(lambda r: len(r.received) >= 2, timeout=WAIT)
    assert cli_receiver.bad_signatures == 0
    assert {r.event.type for r in cli_receiver.received} == {"checkout.session.expired"}
    assert len({r.event.id for r in cli_receiver.received}) == 1
