"""Benchmarks of the webhook ingest, run as production runs it: gunicorn with
gunicorn.conf.py (its default workers, DEBUG off, persistent database connections) on
a fresh, migrated database, driven over loopback by wrk (bench/wrk.py), a C load
generator, with pre-signed ~1.5 KB Stripe events.

The same server, in the same run, also serves two baselines (bench.app.wsgi): a bare
Django view with no middleware (the framework's limit) and a naive acknowledgement
(verify the signature, one INSERT ... ON CONFLICT DO NOTHING in autocommit, 200, no
middleware), beside DjangoMart's own `GET /healthz` (full middleware, no database).
Every figure is therefore a ratio to something measured a moment before on the same
machine.

- webhook.ingest: DjangoMart's acknowledged events/s on POST /webhooks/stripe over the
  naive ack's, at 16 connections (the issue's reference point). Target 1.0: durable
  and transactional with its processing trigger (the row is the work, its trigger's
  NOTIFY wakes a worker), yet no dearer than the naive ack. Every point (1, 16, 64,
  256 connections, unique events; 16 connections, repeated events; a fixed rate) is
  in the details and in bench/results/ingest.png.
- webhook.ingest_p99: DjangoMart's p99 latency over the naive ack's at 16
  connections. Target 1.0 (no worse).
- webhook.ingest_latency: median time to acknowledge one event with a single
  connection (no queueing). Target: 5 ms, the design's "a few milliseconds".

Each run fails unless every acknowledged unique event is stored (committed: read from
another connection after wrk ends), once, due for the workers, with no job queued.
"""

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import psycopg
import stripe

from bench import Result, register
from bench.app.views import NAIVE_DDL, NAIVE_TABLE
from bench.sandbox import HOST, free_port
from bench.wrk import WrkRun, wrk
from devtools.processes import die_with_parent

REPO = Path(__file__).resolve().parents[1]
SECRET = "whsec_bench_ingest_only"  # noqa: S105 - fake; signs loopback requests only
RESULTS = Path(__file__).resolve().parent / "results"
QUICK = os.environ.get("BENCH_QUICK") == "1"  # make bench-quick
SECONDS = 1 if QUICK else 5  # per point (wrk counts whole seconds)
CONCURRENCIES = (1, 16, 64, 256)
REFERENCE = 16  # connections: the point the targets are read at
# Unique events per run: more than any endpoint here acknowledges in SECONDS.
EVENTS_PER_RUN = int(4000 * SECONDS)
LATENCY_TARGET_MS = 5.0
FIXED_RATE_SHARE = 0.6  # of the naive ack's closed-loop rate at REFERENCE connections


@contextlib.contextmanager
def scratch_database(server: str | None = None) -> Iterator[str]:
    """A new, empty database on the DATABASE_URL server (or `server`'s); dropped afterwards."""
    base = server or os.environ["DATABASE_URL"]
    name = f"djangomart_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(base)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def shop_env(database_url: str, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-" + "k3y-" * 12,
        "ALLOWED_HOSTS": HOST,
        "STRIPE_WEBHOOK_SECRETS": SECRET,
        "PORT": str(port),
        # The benches are one client sending thousands of checkouts: per-client limits
        # would measure the limiter (a shop sizes them for people, not for load tests).
        "RATE_LIMIT_CHECKOUT": "1000000/m",
        "RATE_LIMIT_CART_WRITE": "1000000/m",
        "RATE_LIMIT_ORDER_SYNC": "1000000/m",
    }


@contextlib.asynccontextmanager
async def shop_process(env: dict[str, str]) -> AsyncIterator[str]:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=REPO, env=env, check=True
    )
    url = f"http://{HOST}:{env['PORT']}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "gunicorn.conf.py",
            "--bind",
            f"{HOST}:{env['PORT']}",
            "--log-level",
            "warning",
            # The same configuration, with the baselines mounted beside the shop.
            "bench.app.wsgi:application",
        ],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    try:
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as http:
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{url}/healthz") as response:
                        if response.status == 200:
                            break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start")
                await asyncio.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def event_payload(index: int) -> str:
    """A payment_intent.succeeded event about 1.5 KB long, as Stripe sends it: a type the
    workers process, so stored due for them (no worker runs here: this measures the
    acknowledgement only)."""
    now = int(time.time())
    intent = {
        "id": f"pi_bench{index:08d}",
        "object": "payment_intent",
        "amount": 4000,
        "amount_received": 4000,
        "currency": "usd",
        "status": "succeeded",
        "metadata": {"order_id": str(uuid.UUID(int=index))},
        "created": now,
        "latest_charge": None,
        "last_payment_error": None,
        "livemode": False,
        "payment_method_types": ["card"],
        "client_secret": "pi_secret_" + "x" * 24,
        "description": "x" * 600,
    }
    return json.dumps(
        {
            "id": f"evt_bench{uuid.uuid4().hex}",
            "object": "event",
            "api_version": "2026-10-28.endive",
            "created": now,
            "data": {"object": intent},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": "payment_intent.succeeded",
        }
    )


def events_file(
    directory: Path, name: str, count: int, *, first: int = 0
) -> tuple[Path, list[str]]:
    """`count` freshly signed events, one "<signature>\t<body>" line each, for
    bench/wrk/requests.lua; returns the file and the event ids."""
    path = directory / f"{name}.tsv"
    ids = []
    with path.open("w") as out:
        for index in range(first, first + count):
            payload = event_payload(index)
            ids.append(json.loads(payload)["id"])
            signature = stripe.WebhookSignature.generate_signature_header(payload, SECRET)
            out.write(f"{signature}\t{payload}\n")
    return path, ids


def count_rows(database_url: str, sql: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(sql).fetchone()
        return int(row[0]) if row else 0


@dataclass
class Point:
    target: str  # bare, healthz, naive, webhook
    mode: str  # unique, repeated, paced
    connections: int
    run: WrkRun
    stored: int | None = None  # new rows after a POST run

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "mode": self.mode,
            "connections": self.connections,
            **self.run.as_dict(),
            **({} if self.stored is None else {"stored": self.stored}),
        }


PATHS = {"bare": "/bench/bare", "healthz": "/healthz", "naive": "/bench/naive-ack",
         "webhook": "/webhooks/stripe"}  # fmt: skip
TABLES = {"naive": NAIVE_TABLE, "webhook": "payments_stripeevent"}


class Ingest:
    """One server, one scratch database, every point of the ingest benchmark."""

    def __init__(self, url: str, database_url: str, scratch: Path) -> None:
        self.url = url
        self.database_url = database_url
        self.scratch = scratch
        self.points: list[Point] = []
        self.problems: list[str] = []
        self.next_index = 0

    def rows(self, target: str) -> int:
        return count_rows(self.database_url, f"SELECT count(*) FROM {TABLES[target]}")  # noqa: S608

    async def get(self, target: str, connections: int) -> Point:
        run = await wrk(self.url + PATHS[target], connections=connections, seconds=SECONDS,
                        args=["-", PATHS[target], str(min(2, connections)), "0"])  # fmt: skip
        return self._keep(Point(target, "unique", connections, run))

    async def post(
        self, target: str, connections: int, *, mode: str = "unique", pause_ms: float = 0
    ) -> Point:
        if mode == "repeated":
            # 200 events stored a moment ago (each posted once), sent again and again:
            # every answer is a duplicate.
            path, _ = events_file(self.scratch, f"{target}-repeated", 200, first=self.next_index)
            await self.post_once_each(target, path)
        else:
            path, _ = events_file(self.scratch, f"{target}-{connections}-{mode}",
                                  EVENTS_PER_RUN, first=self.next_index)  # fmt: skip
        self.next_index += EVENTS_PER_RUN
        before = self.rows(target)
        threads = min(2, connections)
        args = [str(path), PATHS[target], str(threads), f"{pause_ms:g}"]
        run = await wrk(self.url + PATHS[target], connections=connections, seconds=SECONDS,
                        threads=threads, args=args)  # fmt: skip
        stored = self.rows(target) - before
        point = self._keep(Point(target, mode, connections, run, stored))
        if mode != "repeated":
            if run.wrapped:
                self.problems.append(f"{target} c={connections}: the events file ran out")
            # Requests still in flight when wrk stops are stored but not counted by it:
            # at most one per connection.
            elif not 0 <= stored - (run.requests - run.errors) <= connections:
                self.problems.append(
                    f"{target} c={connections} {mode}: {run.requests - run.errors} acknowledged,"
                    f" {stored} stored"
                )
        elif stored:
            self.problems.append(f"{target} repeated: {stored} rows added by repeats")
        return point

    async def post_once_each(self, target: str, path: Path) -> None:
        async with aiohttp.ClientSession() as http:
            for line in path.read_text().splitlines():
                signature, body = line.split("\t", 1)
                headers = {"Content-Type": "application/json", "Stripe-Signature": signature,
                           "X-Forwarded-Proto": "https"}  # fmt: skip
                async with http.post(self.url + PATHS[target], data=body, headers=headers) as r:
                    if r.status != 200:
                        self.problems.append(f"{target}: storing a repeated event: {r.status}")

    def _keep(self, point: Point) -> Point:
        self.points.append(point)
        if point.run.errors:
            self.problems.append(
                f"{point.target} c={point.connections} {point.mode}: {point.run.errors} errors"
            )
        return point

    def at(self, target: str, connections: int = REFERENCE, mode: str = "unique") -> WrkRun:
        for point in self.points:
            if (point.target, point.connections, point.mode) == (target, connections, mode):
                return point.run
        raise KeyError((target, connections, mode))


async def ingest_measure() -> Ingest:
    with scratch_database() as database_url, tempfile.TemporaryDirectory() as scratch:
        env = shop_env(database_url, free_port())
        async with shop_process(env) as url:
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute(NAIVE_DDL)
            bench = Ingest(url, database_url, Path(scratch))
            for target in ("naive", "webhook"):  # warm every worker's connection
                await bench.post(target, 16)
            bench.points.clear()
            for connections in CONCURRENCIES:
                await bench.get("bare", connections)
                await bench.get("healthz", connections)
                await bench.post("naive", connections)
                await bench.post("webhook", connections)
            for target in ("naive", "webhook"):
                await bench.post(target, REFERENCE, mode="repeated")
            rate = FIXED_RATE_SHARE * bench.at("naive").rate
            pause_ms = REFERENCE / rate * 1000
            for target in ("naive", "webhook"):
                await bench.post(target, REFERENCE, mode="paced", pause_ms=pause_ms)
            jobs = count_rows(database_url, "SELECT count(*) FROM procrastinate_jobs")
            not_due = count_rows(
                database_url, "SELECT count(*) FROM payments_stripeevent WHERE status <> 'received'"
            )
            if jobs or not_due:
                bench.problems.append(f"{jobs} jobs queued, {not_due} events not due")
    return bench


def ingest_plot(bench: Ingest, path: Path) -> Path:
    """Requests/s and p99 latency over connections, one line per endpoint."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (rate_axis, p99_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    for target in PATHS:
        runs = [bench.at(target, c) for c in CONCURRENCIES]
        rate_axis.plot(CONCURRENCIES, [r.rate for r in runs], marker="o", label=target)
        p99_axis.plot(CONCURRENCIES, [r.p99_ms for r in runs], marker="o", label=target)
    for axis, title in ((rate_axis, "requests/s"), (p99_axis, "p99 latency (ms)")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(CONCURRENCIES, [str(c) for c in CONCURRENCIES])
        axis.set_xlabel("connections (wrk)")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    p99_axis.set_yscale("log")
    rate_axis.legend()
    figure.suptitle("Webhook ingest: DjangoMart vs baselines, same server, same run")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


_MEASURED: dict[str, Ingest] = {}


async def _measured() -> Ingest:
    """The three results come from one measurement (one server, one run)."""
    if "ingest" not in _MEASURED:
        _MEASURED["ingest"] = await ingest_measure()
    return _MEASURED["ingest"]


def _details(bench: Ingest) -> dict[str, Any]:
    return {
        "seconds_per_point": SECONDS,
        "reference_connections": REFERENCE,
        "plot": str(ingest_plot(bench, RESULTS / "ingest.png")),
        "points": [p.as_dict() for p in bench.points],
    }


@register("webhook.ingest")
async def webhook_ingest() -> Result:
    bench = await _measured()
    webhook, naive = bench.at("webhook"), bench.at("naive")
    details = {
        "webhook_per_s": round(webhook.rate, 1),
        "naive_per_s": round(naive.rate, 1),
        "healthz_per_s": round(bench.at("healthz").rate, 1),
        "bare_per_s": round(bench.at("bare").rate, 1),
        **_details(bench),
    }
    error = "; ".join(bench.problems) or None
    return Result("webhook.ingest", webhook.rate / naive.rate, "x naive ack", 1.0,
                  details=details, error=error)  # fmt: skip


@register("webhook.ingest_p99")
async def webhook_ingest_p99() -> Result:
    bench = await _measured()
    webhook, naive = bench.at("webhook"), bench.at("naive")
    details = {"webhook_p99_ms": webhook.p99_ms, "naive_p99_ms": naive.p99_ms}
    return Result("webhook.ingest_p99", webhook.p99_ms / naive.p99_ms, "x naive p99", 1.0,
                  higher_is_better=False, details=details,
                  error="; ".join(bench.problems) or None)  # fmt: skip


@register("webhook.ingest_latency")
async def webhook_ingest_latency() -> Result:
    bench = await _measured()
    one = bench.at("webhook", 1)
    details = {
        "p50_ms": one.p50_ms,
        "p99_ms": one.p99_ms,
        "naive_p50_ms": bench.at("naive", 1).p50_ms,
    }
    return Result("webhook.ingest_latency", one.p50_ms, "ms (p50)", LATENCY_TARGET_MS,
                  higher_is_better=False, details=details,
                  error="; ".join(bench.problems) or None)  # fmt: skip
