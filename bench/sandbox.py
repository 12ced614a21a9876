"""Benchmarks of stripe_sandbox, run as production runs it: `python -m stripe_sandbox`
in its own process, driven over loopback from this one.

- sandbox.api_requests: requests/s on the REST API from 16 concurrent clients, half
  `POST /v1/checkout/sessions` (form-encoded, Stripe's bracket notation) and half
  `GET /v1/checkout/sessions/{id}`. Target: 500/s.
- sandbox.webhook_deliveries: signed webhook deliveries/s to a receiver in this
  process that verifies signatures with the official SDK, while sessions are paid
  (each payment emits 4 events). Target: 1,000/s.
- sandbox.webhook_backlog_drain: the same events queued while delivery is paused (an
  outage), then drained. Target: 1,000/s.

Every phase has a deadline, traffic stays on 127.0.0.1 and the subprocess is stopped
on the way out, whatever happens.
"""

import asyncio
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import stripe
from aiohttp import web

from bench import Result, register
from devtools.processes import die_with_parent

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
API_KEY = "sk_test_bench"
WEBHOOK_SECRET = "whsec_bench_only"  # noqa: S105 - fake; signs loopback deliveries only
AUTH = {"Authorization": f"Bearer {API_KEY}"}

API_REQUESTS = 3000
API_WARMUP = 200
API_CONCURRENCY = 16
API_TARGET = 500.0

WEBHOOK_SESSIONS = 1100  # x 4 events each = 4,400 deliveries
EVENTS_PER_PAYMENT = 4  # payment_intent.created, charge.succeeded, .succeeded, .completed
WEBHOOK_PARALLEL = 32
WEBHOOK_CONCURRENCY = 16  # concurrent payers
WEBHOOK_TARGET = 1000.0
# Every signature is verified; every N-th delivery also goes through construct_event.
VERIFY_FULLY_EVERY = 10

PHASE_TIMEOUT = 90.0  # seconds, per phase

# A Checkout Session as DjangoMart creates one, form-encoded as the SDK encodes it.
SESSION_FORM = {
    "mode": "payment",
    "success_url": "http://shop.test/success?session_id={CHECKOUT_SESSION_ID}",
    "cancel_url": "http://shop.test/cancel",
    "line_items[0][quantity]": "2",
    "line_items[0][price_data][currency]": "usd",
    "line_items[0][price_data][unit_amount]": "1500",
    "line_items[0][price_data][product_data][name]": "Ceramic Mug",
    "line_items[1][quantity]": "1",
    "line_items[1][price_data][currency]": "usd",
    "line_items[1][price_data][unit_amount]": "2000",
    "line_items[1][price_data][product_data][name]": "Classic Tee",
    "metadata[order_id]": "ord_bench",
    "client_reference_id": "ord_bench",
    "customer_email": "bench@example.com",
    "payment_intent_data[metadata][order_id]": "ord_bench",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def sandbox_process(*flags: str) -> AsyncIterator[str]:
    """`python -m stripe_sandbox --port <free> FLAGS` in a subprocess; yields its URL."""
    port = free_port()
    url = f"http://{HOST}:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "stripe_sandbox", "--host", HOST, "--port", str(port), *flags],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        try:
            await _wait_ready(url, process, log)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _wait_ready(url: str, process: "subprocess.Popen[bytes]", log: Any) -> None:
    deadline = time.monotonic() + 20
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log.seek(0)
                output = log.read().decode(errors="replace")
                raise RuntimeError(f"the sandbox exited with {process.returncode}:\n{output}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{url}/_sandbox/config") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the sandbox did not answer on {url} within 20 s")


@dataclass
class Tally:
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


async def _in_parallel(workers: int, job: Callable[[], Awaitable[None]]) -> None:
    async with asyncio.timeout(PHASE_TIMEOUT):
        await asyncio.gather(*(job() for _ in range(workers)))


async def _create_session(http: aiohttp.ClientSession, url: str, tally: Tally) -> str | None:
    started = time.perf_counter()
    async with http.post(f"{url}/v1/checkout/sessions", data=SESSION_FORM) as response:
        body = await response.json()
        tally.latencies.append(time.perf_counter() - started)
        if response.status != 200:
            tally.error(f"POST {response.status}")
            return None
        tally.ok += 1
        return str(body["id"])


async def _get_session(
    http: aiohttp.ClientSession, url: str, session_id: str, tally: Tally
) -> None:
    started = time.perf_counter()
    async with http.get(f"{url}/v1/checkout/sessions/{session_id}") as response:
        body = await response.json()
        tally.latencies.append(time.perf_counter() - started)
        if response.status != 200 or body.get("id") != session_id:
            tally.error(f"GET {response.status}")
        else:
            tally.ok += 1


async def _request_mix(http: aiohttp.ClientSession, url: str, requests: int) -> Tally:
    """`requests` requests from API_CONCURRENCY clients, each alternating create, get."""
    tally = Tally()
    tickets = iter(range(requests))

    async def client() -> None:
        created: str | None = None
        for _ in tickets:
            if created is None:
                created = await _create_session(http, url, tally)
            else:
                await _get_session(http, url, created, tally)
                created = None

    await _in_parallel(API_CONCURRENCY, client)
    return tally


@register("sandbox.api_requests")
async def api_requests() -> Result:
    async with (
        sandbox_process() as url,
        aiohttp.ClientSession(
            headers=AUTH, connector=aiohttp.TCPConnector(limit=API_CONCURRENCY)
        ) as http,
    ):
        await _request_mix(http, url, API_WARMUP)
        started = time.perf_counter()
        tally = await _request_mix(http, url, API_REQUESTS)
        seconds = time.perf_counter() - started
    latencies = sorted(tally.latencies)
    return Result(
        name="sandbox.api_requests",
        value=API_REQUESTS / seconds,
        unit="requests/s",
        target=API_TARGET,
        details={
            "requests": API_REQUESTS,
            "concurrency": API_CONCURRENCY,
            "seconds": round(seconds, 3),
            "p50_ms": round(statistics.median(latencies) * 1000, 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
            "errors": tally.errors,
        },
        error=f"{sum(tally.errors.values())} requests failed" if tally.errors else None,
    )


@dataclass
class HookReceiver:
    """The shop's side of webhooks, minimal: verify, count, answer 200.

    Every delivery's signature is checked with the SDK's own verification
    (stripe.WebhookSignature.verify_header, the HMAC check inside construct_event) and
    its event id counted for duplicates; every VERIFY_FULLY_EVERY-th delivery goes
    through the whole stripe.Webhook.construct_event. Building the SDK's Event object
    for every delivery would make this process, not the sandbox, the bottleneck on 2
    cores."""

    secret: str
    expected: int = 0
    delivered: int = 0
    constructed: int = 0
    bad_signatures: int = 0
    event_ids: set[str] = field(default_factory=set)
    first: float = 0.0
    last: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        payload = await request.read()
        signature = request.headers.get("Stripe-Signature", "")
        try:
            if self.delivered % VERIFY_FULLY_EVERY == 0:
                event_id = stripe.Webhook.construct_event(payload, signature, self.secret).id
                self.constructed += 1
            else:
                stripe.WebhookSignature.verify_header(payload, signature, self.secret)
                event_id = json.loads(payload)["id"]
        except (stripe.SignatureVerificationError, ValueError):
            self.bad_signatures += 1
            return web.Response(status=400)
        now = time.perf_counter()
        if not self.delivered:
            self.first = now
        self.last = now
        self.delivered += 1
        self.event_ids.add(event_id)
        if self.expected and self.delivered >= self.expected:
            self.done.set()
        return web.Response()


@contextlib.asynccontextmanager
async def receiver_server(receiver: HookReceiver) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, HOST, port)
    await site.start()
    try:
        yield f"http://{HOST}:{port}/hook"
    finally:
        await runner.cleanup()


async def _create_sessions(http: aiohttp.ClientSession, url: str, count: int) -> list[str]:
    """Sessions to pay later (creating one emits no event)."""
    sessions: list[str] = []
    tickets = iter(range(count))
    tally = Tally()

    async def create() -> None:
        for _ in tickets:
            session_id = await _create_session(http, url, tally)
            if session_id:
                sessions.append(session_id)

    await _in_parallel(WEBHOOK_CONCURRENCY, create)
    if tally.errors:
        raise RuntimeError(f"creating sessions failed: {tally.errors}")
    return sessions


async def _pay_sessions(http: aiohttp.ClientSession, url: str, sessions: list[str]) -> float:
    """Pays every session with the success card; returns payments/s."""
    to_pay = iter(sessions)
    tally = Tally()

    async def pay() -> None:
        for session_id in to_pay:
            async with http.post(
                f"{url}/_sandbox/checkout/sessions/{session_id}/pay",
                json={"card": "4242424242424242"},
            ) as response:
                body = await response.json()
                if response.status == 200 and body["outcome"] == "succeeded":
                    tally.ok += 1
                else:
                    tally.error(f"pay {response.status}")

    started = time.perf_counter()
    await _in_parallel(WEBHOOK_CONCURRENCY, pay)
    seconds = time.perf_counter() - started
    if tally.errors:
        raise RuntimeError(f"paying sessions failed: {tally.errors}")
    return tally.ok / seconds


async def _deliveries(name: str, *, backlog: bool) -> Result:
    """Pays WEBHOOK_SESSIONS sessions and times their deliveries, first to last.

    Live (backlog=False): deliveries flow while the sessions are being paid, so the
    sandbox answers the API and delivers at once, as in a test run.
    Backlog (backlog=True): the sandbox starts paused (an outage), every event is
    queued, then delivery is resumed and the backlog timed as it drains."""
    receiver = HookReceiver(WEBHOOK_SECRET)
    async with receiver_server(receiver) as hook_url:
        flags = ["--webhook-url", hook_url, "--webhook-secret", WEBHOOK_SECRET]
        flags += ["--parallel-deliveries", str(WEBHOOK_PARALLEL)]
        if backlog:
            flags.append("--paused")
        async with (
            sandbox_process(*flags) as url,
            aiohttp.ClientSession(
                headers=AUTH, connector=aiohttp.TCPConnector(limit=WEBHOOK_CONCURRENCY)
            ) as http,
        ):
            sessions = await _create_sessions(http, url, WEBHOOK_SESSIONS)
            receiver.expected = len(sessions) * EVENTS_PER_PAYMENT
            payments_per_s = await _pay_sessions(http, url, sessions)
            resumed = time.perf_counter()
            if backlog:
                assert receiver.delivered == 0, "delivered while paused"
                async with http.post(f"{url}/_sandbox/config", json={"paused": False}) as resp:
                    resp.raise_for_status()
            lost: str | None = None
            try:
                async with asyncio.timeout(PHASE_TIMEOUT):
                    await receiver.done.wait()
            except TimeoutError:
                lost = f"only {receiver.delivered} of {receiver.expected} deliveries arrived"
            async with http.post(f"{url}/_sandbox/wait_idle", json={"timeout": 10}) as response:
                idle = await response.json()
    seconds = receiver.last - receiver.first
    delivered = receiver.delivered
    problems = [lost] if lost else []
    if receiver.bad_signatures:
        problems.append(f"{receiver.bad_signatures} bad signatures")
    if not idle["idle"]:
        problems.append(f"{idle['pending']} deliveries still pending")
    if len(receiver.event_ids) != delivered:
        problems.append(f"{delivered - len(receiver.event_ids)} duplicate deliveries")
    return Result(
        name=name,
        # The first delivery opens the interval, so it is not counted in the rate.
        value=(delivered - 1) / seconds if seconds > 0 else 0.0,
        unit="deliveries/s",
        target=WEBHOOK_TARGET,
        details={
            "deliveries": delivered,
            "expected": receiver.expected,
            "signatures_verified": delivered,
            "construct_event": receiver.constructed,
            "seconds": round(seconds, 3),
            "last_delivery_after_payments_s": round(receiver.last - resumed, 3),
            "parallel_deliveries": WEBHOOK_PARALLEL,
            "payments_per_s": round(payments_per_s, 1),
        },
        error="; ".join(problems) or None,
    )


@register("sandbox.webhook_deliveries")
async def webhook_deliveries() -> Result:
    return await _deliveries("sandbox.webhook_deliveries", backlog=False)


@register("sandbox.webhook_backlog_drain")
async def webhook_backlog_drain() -> Result:
    return await _deliveries("sandbox.webhook_backlog_drain", backlog=True)
