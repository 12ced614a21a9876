"""The webhook storm: thousands of orders whose payments, declines, delayed methods,
expiries, refunds and disputes happened on the sandbox, delivered all at once (with
duplicates, out of order, over many parallel connections) to the shop as production
runs it (gunicorn with gunicorn.conf.py, and STORM_WORKERS Stripe event workers), and
checked order by order against the sandbox's truth.

How one run goes (bench.storm_run, also used by bench.chaos):
1. A scratch database, migrated and seeded with the demo catalog; the sandbox with no
   webhook endpoint (its events are only listed); the shop pointed at it.
2. ORDERS checkouts through `POST /api/v1/checkout`, then a flow per order on the
   sandbox (FLOWS: paid, declined then paid, delayed then paid or failed, expired,
   refunded in full or in part, disputed and won or lost, an inquiry left open).
3. Every event the sandbox emitted is read back from `GET /v1/events`, and the storm
   is built: each event once, DUPLICATE_RATE more copies, each delivery moved by up to
   REORDER_WINDOW positions, each signed as Stripe signs it. A trigger installed in the
   scratch database (never in the shop's migrations) makes the first processing
   attempt of FAIL_FIRST_SHARE of the events fail, the way a deadlock or a lost
   connection would: the workers must retry them.
4. The event workers start; wrk delivers the whole storm over DELIVERY_CONNECTIONS
   connections, each delivery once. Deliveries that did not get a 200 are sent again,
   as Stripe retries them. The backlog (events stored, not yet final) is sampled
   every SAMPLE_SECONDS until nothing is due.
5. The correctness report: every sandbox event stored once and final (lost 0), no
   event applied twice to a timeline or to money (double_applied 0), every order's
   status, payment status, amount paid, amount refunded and dispute flags equal to
   what the sandbox says (wrong 0), and every variant's stock equal to what its orders
   hold and sold.

Results: storm.events_per_s (unique events settled per second, from the first
delivery until nothing is due; target 1,000 with 2 workers) and storm.correctness
(lost + double-applied + wrong; target 0), with the backlog curve in
bench/results/storm.png.
"""

import asyncio
import contextlib
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import stripe

from bench import Result, register
from bench.app.views import NAIVE_DDL
from bench.ingest import QUICK, REPO, RESULTS, scratch_database, shop_env, shop_process
from bench.sandbox import HOST, free_port, sandbox_process
from bench.wrk import WrkRun, wrk
from devtools.processes import die_with_parent

SECRET = "whsec_bench_storm_only"  # noqa: S105 - fake; signs loopback requests only
API_KEY = "sk_test_bench_storm_not_a_key"
ORDERS = 150 if QUICK else 2000
SEED = 20261203
DUPLICATE_RATE = 0.3  # chance of one more copy of a delivery (again and again, up to 4)
REORDER_WINDOW = 400  # deliveries: each lands up to this many positions from its place
DELIVERY_CONNECTIONS = 32  # parallel deliveries (Stripe sends many at once)
FAIL_FIRST_SHARE = 0.05  # of the events: their first processing attempt fails
STORM_WORKERS = 2  # Stripe event worker processes (the configuration)
SETUP_CONCURRENCY = 16
SAMPLE_SECONDS = 0.25
SETTLE_TIMEOUT = 240.0  # seconds after the last delivery
EVENTS_PER_S_TARGET = 1000.0
HOT_ORDERS = 10
HOT_DECLINES = 30 if QUICK else 150  # per hot order, each 2 events, then the payment
HOT_P99_TARGET = 10.0  # the seed-style handler's ack p99 over DjangoMart's, at least

GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"

# (name, weight): what happens to an order on the sandbox before the storm.
FLOWS: list[tuple[str, int]] = [
    ("paid", 20),
    ("declined_then_paid", 30),  # DECLINES declines first
    ("delayed_paid", 8),
    ("delayed_failed", 5),
    ("expired", 10),
    ("refunded_full", 8),
    ("refunded_partly", 7),  # in PARTIAL_REFUNDS parts
    ("disputed_won", 4),
    ("disputed_lost", 4),
    ("inquiry_open", 4),
]
DECLINES = 3
PARTIAL_REFUNDS = (300, 200, 100)  # cents: the cheapest demo variant is 1,200

# Installed in the scratch database only. The worker's own final write of an event
# (status leaving received/failed with attempts 1) raises for the chosen events, so the
# attempt's savepoint rolls back whatever the handler wrote and the failure is recorded
# (payments.inbox._attempt); attempt 2 goes through.
FAIL_FIRST_DDL = """
CREATE TABLE bench_fail_first (id text PRIMARY KEY);
CREATE FUNCTION bench_fail_first() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.attempts = 1 AND NEW.status IN ('processed', 'unmatched', 'ignored')
       AND EXISTS (SELECT 1 FROM bench_fail_first WHERE id = NEW.id) THEN
        RAISE EXCEPTION 'bench: forced first-attempt failure of %', NEW.id
            USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER bench_fail_first BEFORE UPDATE ON payments_stripeevent
    FOR EACH ROW EXECUTE FUNCTION bench_fail_first();
"""

HEADERS = {"Content-Type": "application/json", "X-Forwarded-Proto": "https"}


@dataclass
class Order:
    id: str
    session_id: str
    flow: str
    sku: str
    dispute_id: str | None = None


@dataclass
class Storm:
    """One storm's measurements, for the results and the plot."""

    orders: int = 0
    events: int = 0  # unique events the sandbox emitted
    deliveries: int = 0  # the storm's requests, duplicates included
    redelivered: int = 0
    setup_seconds: float = 0.0
    delivery_seconds: float = 0.0  # first delivery to the last one answered
    settle_seconds: float = 0.0  # first delivery until nothing is due
    after_last_delivery_seconds: float = 0.0
    forced_failures: int = 0
    wrk: WrkRun | None = None
    backlog: list[tuple[float, int, int]] = field(default_factory=list)  # t, stored, unsettled
    report: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    chaos: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, Any] = field(default_factory=dict)  # the seed-style comparisons

    @property
    def events_per_s(self) -> float:
        return self.events / self.settle_seconds if self.settle_seconds else 0.0

    @property
    def errors(self) -> int:
        r = self.report
        return int(r.get("lost", 0)) + int(r.get("double_applied", 0)) + int(r.get("wrong", 0))

    def details(self) -> dict[str, Any]:
        return {
            "orders": self.orders,
            "unique_events": self.events,
            "deliveries": self.deliveries,
            "redelivered": self.redelivered,
            "forced_first_attempt_failures": self.forced_failures,
            "event_workers": STORM_WORKERS,
            "delivery_connections": DELIVERY_CONNECTIONS,
            "duplicate_rate": DUPLICATE_RATE,
            "reorder_window": REORDER_WINDOW,
            "setup_seconds": round(self.setup_seconds, 1),
            "delivery_seconds": round(self.delivery_seconds, 2),
            "settle_seconds": round(self.settle_seconds, 2),
            "settled_after_last_delivery_seconds": round(self.after_last_delivery_seconds, 2),
            "delivery": None if self.wrk is None else self.wrk.as_dict(),
            "correctness": self.report,
            **({"chaos": self.chaos} if self.chaos else {}),
            **({"baselines": self.baselines} if self.baselines else {}),
        }


def _sql_count(database_url: str, sql: str, params: Any = None) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(sql, params).fetchone()
        return int(row[0]) if row else 0


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


@contextlib.contextmanager
def event_workers(env: dict[str, str], count: int) -> Iterator[list["subprocess.Popen[bytes]"]]:
    """`count` `manage.py stripe_events_worker` processes, as docs/deployment.md runs them."""
    processes = [event_worker(env) for _ in range(count)]
    try:
        yield processes
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def event_worker(env: dict[str, str]) -> "subprocess.Popen[bytes]":
    return subprocess.Popen(
        [sys.executable, "manage.py", "stripe_events_worker"],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )


def storm_env(database_url: str, sandbox_url: str) -> dict[str, str]:
    env = shop_env(database_url, free_port())
    env.update(
        STRIPE_WEBHOOK_SECRETS=SECRET,
        STRIPE_SECRET_KEY=API_KEY,
        STRIPE_API_BASE=sandbox_url,
        # The checkouts' success and cancel URLs: the shop's own pages.
        PUBLIC_URL=f"http://{HOST}:{env['PORT']}",
    )
    return env


async def _gather_limited(limit: int, jobs: list[Callable[[], Awaitable[None]]]) -> None:
    queue = iter(jobs)

    async def runner() -> None:
        for job in queue:
            await job()

    await asyncio.gather(*(runner() for _ in range(limit)))


async def orders_create(
    http: aiohttp.ClientSession, url: str, skus: list[str], *, count: int = ORDERS
) -> list[Order]:
    """`count` checkouts through the shop's API, each for one unit of a SKU taken in
    turn, each with a flow drawn from FLOWS."""
    rng = random.Random(SEED + count)  # noqa: S311 - a reproducible storm, not a secret
    names = [name for name, _ in FLOWS]
    weights = [weight for _, weight in FLOWS]
    plan = [(i, rng.choices(names, weights)[0], skus[i % len(skus)]) for i in range(count)]
    created: list[Order] = []

    async def one(index: int, flow: str, sku: str) -> None:
        body = {"email": f"storm{index}-{count}@example.com",
                "lines": [{"sku": sku, "quantity": 1}]}  # fmt: skip
        async with http.post(f"{url}/api/v1/checkout", json=body,
                             headers={"X-Forwarded-Proto": "https"}) as response:  # fmt: skip
            data = await response.json()
            if response.status != 201:
                raise RuntimeError(f"checkout {index}: {response.status} {data}")
        created.append(Order(data["order"]["id"], data["checkout_session_id"], flow, sku))

    await _gather_limited(
        SETUP_CONCURRENCY,
        [lambda a=args: one(*a) for args in plan],  # type: ignore[misc]
    )
    return created


class Sandbox:
    """The sandbox's control API and REST API, as the bench drives the flows."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url

    async def control(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        async with self.http.post(f"{self.url}/_sandbox/{path}", json=body or {}) as response:
            data: dict[str, Any] = await response.json()
            if response.status != 200:
                raise RuntimeError(f"sandbox {path}: {response.status} {data}")
            return data

    async def api(self, method: str, path: str, form: dict[str, str] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        url = f"{self.url}/v1/{path}"
        async with self.http.request(method, url, data=form, headers=headers) as response:
            data = await response.json()
            if response.status != 200:
                raise RuntimeError(f"sandbox {method} {path}: {response.status} {data}")
            return data

    async def pay(self, session_id: str, **how: Any) -> dict[str, Any]:
        return await self.control(f"checkout/sessions/{session_id}/pay", how)

    async def flow(self, order: Order) -> None:
        """What the customer, the bank, staff in the Dashboard and the card holder did."""
        sid = order.session_id
        if order.flow == "expired":
            await self.api("POST", f"checkout/sessions/{sid}/expire")
            return
        if order.flow.startswith("delayed"):
            await self.pay(sid, method="delayed")
            result = "succeeded" if order.flow == "delayed_paid" else "failed"
            await self.control(f"checkout/sessions/{sid}/delayed_payment", {"result": result})
            return
        if order.flow == "declined_then_paid":
            for _ in range(DECLINES):
                await self.pay(sid, card=DECLINED_CARD)
        paid = await self.pay(sid, card=GOOD_CARD)
        intent = paid["payment_intent"]
        if order.flow == "refunded_full":
            await self.api("POST", "refunds", {"payment_intent": intent["id"]})
        elif order.flow == "refunded_partly":
            for amount in PARTIAL_REFUNDS:
                form = {"payment_intent": intent["id"], "amount": str(amount)}
                await self.api("POST", "refunds", form)
        elif order.flow.startswith("disputed") or order.flow == "inquiry_open":
            inquiry = order.flow == "inquiry_open"
            dispute = await self.control(f"charges/{intent['latest_charge']}/dispute",
                                         {"inquiry": inquiry})  # fmt: skip
            order.dispute_id = dispute["id"]
            if not inquiry:
                outcome = "won" if order.flow == "disputed_won" else "lost"
                await self.control(f"disputes/{dispute['id']}/close", {"outcome": outcome})

    async def events(self) -> list[dict[str, Any]]:
        """Every event, oldest first (the list is newest first, 100 a page)."""
        found: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            query = "events?limit=100" + (f"&starting_after={after}" if after else "")
            page = await self.api("GET", query)
            found.extend(page["data"])
            if not page["has_more"]:
                break
            after = page["data"][-1]["id"]
        found.reverse()
        return found


def storm_deliveries(events: list[dict[str, Any]], rng: random.Random) -> list[str]:
    """The event bodies in the order the storm delivers them: each at least once,
    duplicates, neighbours shuffled within REORDER_WINDOW."""
    bodies = [json.dumps(event) for event in events]
    placed: list[tuple[float, str]] = []
    for position, body in enumerate(bodies):
        copies = 1
        while copies < 5 and rng.random() < DUPLICATE_RATE:
            copies += 1
        for _ in range(copies):
            placed.append((position + rng.uniform(0, REORDER_WINDOW), body))
    placed.sort(key=lambda item: item[0])
    return [body for _, body in placed]


def signed_file(path: Path, bodies: list[str]) -> Path:
    with path.open("w") as out:
        for body in bodies:
            signature = stripe.WebhookSignature.generate_signature_header(body, SECRET)
            out.write(f"{signature}\t{body}\n")
    return path


async def redeliver_missing(
    http: aiohttp.ClientSession, url: str, database_url: str, events: list[dict[str, Any]]
) -> int:
    """Stripe retries what was not acknowledged: every event not stored yet is sent
    again (freshly signed) until it is, or a minute passes."""
    sent = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(database_url, connect_timeout=2) as conn:
                stored = {row[0] for row in conn.execute("SELECT id FROM payments_stripeevent")}
        except psycopg.Error:  # the database restarting (bench.chaos)
            await asyncio.sleep(0.5)
            continue
        missing = [e for e in events if e["id"] not in stored]
        if not missing:
            return sent
        for event in missing:
            body = json.dumps(event)
            headers = {**HEADERS,
                       "Stripe-Signature": stripe.WebhookSignature.generate_signature_header(
                           body, SECRET)}  # fmt: skip
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.post(f"{url}/webhooks/stripe", data=body, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=10)):  # fmt: skip
                    sent += 1
        await asyncio.sleep(0.5)
    return sent


UNSETTLED = "SELECT count(*) FROM payments_stripeevent WHERE status IN ('received', 'failed')"


async def backlog_sample(
    database_url: str, started: float, storm: Storm, stop: asyncio.Event
) -> None:
    """The backlog curve: stored events and those not final yet, every SAMPLE_SECONDS."""
    while not stop.is_set():
        with contextlib.suppress(psycopg.Error):
            async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as c:
                while not stop.is_set():
                    cursor = await c.execute(
                        "SELECT count(*), count(*) FILTER (WHERE status IN ('received', 'failed'))"
                        " FROM payments_stripeevent"
                    )
                    row = await cursor.fetchone()
                    assert row is not None
                    storm.backlog.append((time.monotonic() - started, int(row[0]), int(row[1])))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), SAMPLE_SECONDS)
        await asyncio.sleep(SAMPLE_SECONDS)  # the database restarting (chaos)


async def settled(database_url: str, expected: int, deadline: float) -> bool:
    """Waits until every expected event is stored and none is due or failing."""
    while time.monotonic() < deadline:
        with contextlib.suppress(psycopg.Error):
            stored = _sql_count(database_url, "SELECT count(*) FROM payments_stripeevent")
            if stored >= expected and _sql_count(database_url, UNSETTLED) == 0:
                return True
        await asyncio.sleep(0.05)
    return False


# ---------------------------------------------------------------- correctness report


async def sandbox_truth(sandbox: Sandbox, orders: list[Order]) -> dict[str, dict[str, Any]]:
    """What each order should be, read from the sandbox's objects."""
    truth: dict[str, dict[str, Any]] = {}

    async def one(order: Order) -> None:
        session = await sandbox.api("GET", f"checkout/sessions/{order.session_id}")
        expected: dict[str, Any] = {"amount_paid": 0, "amount_refunded": 0,
                                    "disputed": False, "dispute_lost": False}  # fmt: skip
        if session["status"] == "expired":
            expected.update(status="expired", payment_status="unpaid")
        elif session["payment_status"] == "paid":
            intent = await sandbox.api("GET", f"payment_intents/{session['payment_intent']}")
            charge = await sandbox.api("GET", f"charges/{intent['latest_charge']}")
            paid, refunded = int(intent["amount_received"]), int(charge["amount_refunded"])
            disputes = [await sandbox.api("GET", f"disputes/{order.dispute_id}")
                        ] if order.dispute_id else []  # fmt: skip
            expected.update(
                status="paid",
                payment_status=(
                    "refunded" if refunded >= paid else "partially_refunded" if refunded else "paid"
                ),
                amount_paid=paid,
                amount_refunded=refunded,
                disputed=any(d["status"] not in CLOSED_DISPUTE for d in disputes),
                dispute_lost=any(d["status"] == "lost" for d in disputes),
            )
        elif session["status"] == "complete":
            intent = await sandbox.api("GET", f"payment_intents/{session['payment_intent']}")
            if intent["status"] == "processing":
                expected.update(status="pending", payment_status="processing")
            else:
                expected.update(status="failed", payment_status="unpaid")
        else:
            expected.update(status="pending", payment_status="unpaid")
        truth[order.id] = expected

    await _gather_limited(SETUP_CONCURRENCY, [lambda o=o: one(o) for o in orders])  # type: ignore[misc]
    return truth


CLOSED_DISPUTE = frozenset({"won", "lost", "warning_closed", "prevented"})


FIELDS = ("status", "payment_status", "amount_paid", "amount_refunded", "disputed", "dispute_lost")


def correctness(
    database_url: str,
    events: list[dict[str, Any]],
    orders: list[Order],
    truth: dict[str, dict[str, Any]],
    initial_stock: dict[str, tuple[int, int]],
) -> dict[str, Any]:
    """lost, double_applied and wrong, with up to ten examples of each."""
    with psycopg.connect(database_url) as conn:
        stored: dict[str, str] = dict(
            conn.execute("SELECT id, status FROM payments_stripeevent").fetchall()
        )
        shop = {
            str(row[0]): dict(zip(FIELDS, row[1:], strict=True))
            for row in conn.execute(
                "SELECT id, status, payment_status, amount_paid, amount_refunded, disputed,"
                " dispute_lost FROM orders_order"
            )
        }
        # One event may write several timeline lines (a dispute opened and its funds
        # withdrawn, two refunds a charge.refunded makes up for), and one fact may come
        # from several events; but a fact (a transition, a payment recorded, a refund's
        # or a dispute's change of status) is written once, and no event writes the same
        # line twice. A declined attempt is a fact of its own event: each of an order's
        # declines writes the same line once.
        repeated_lines = conn.execute(
            "SELECT order_id::text, kind, count(*) FROM orders_orderevent"
            " WHERE stripe_event_id <> '' AND kind <> 'payment_attempt_failed'"
            " GROUP BY order_id, kind, from_status, to_status, message HAVING count(*) > 1"
            " UNION ALL SELECT stripe_event_id, kind, count(*) FROM orders_orderevent"
            " WHERE stripe_event_id <> '' GROUP BY stripe_event_id, kind, message"
            " HAVING count(*) > 1"
        ).fetchall()
        repeated_payments = conn.execute(
            "SELECT stripe_payment_intent_id, count(*) FROM payments_payment"
            " GROUP BY 1 HAVING count(*) > 1"
        ).fetchall()
        stock = {
            sku: (on_hand, reserved)
            for sku, on_hand, reserved in conn.execute(
                "SELECT sku, on_hand, reserved FROM catalog_variant"
            )
        }
        held: dict[str, int] = dict(conn.execute(
            "SELECT l.sku, sum(l.quantity) FROM orders_orderline l JOIN orders_order o"
            " ON o.id = l.order_id WHERE o.status = 'pending' AND NOT o.stock_released"
            " GROUP BY 1"
        ).fetchall())  # fmt: skip
        sold: dict[str, int] = dict(conn.execute(
            "SELECT l.sku, sum(l.quantity) FROM orders_orderline l JOIN orders_order o"
            " ON o.id = l.order_id WHERE o.status IN ('paid', 'fulfilled') GROUP BY 1"
        ).fetchall())  # fmt: skip
    lost = [f"{e['id']} {stored.get(e['id'], 'not stored')}" for e in events
            if stored.get(e["id"]) not in FINAL_EVENT]  # fmt: skip
    double = [f"{r[0]}: the same {r[1]} line {r[2]} times" for r in repeated_lines]
    double += [f"payment {r[0]} recorded {r[1]} times" for r in repeated_payments]
    wrong: list[str] = []
    by_flow: Counter[str] = Counter()
    for order in orders:
        by_flow[order.flow] += 1
        want, got = truth[order.id], shop.get(order.id)
        if got != want:
            wrong.append(f"order {order.id} ({order.flow}): shop {got}, sandbox {want}")
    for sku, (on_hand, reserved) in initial_stock.items():
        want_stock = (on_hand - int(sold.get(sku, 0)), reserved + int(held.get(sku, 0)))
        if stock.get(sku) != want_stock:
            wrong.append(f"variant {sku}: (on_hand, reserved) {stock.get(sku)}, want {want_stock}")
    return {
        "lost": len(lost),
        "double_applied": len(double),
        "wrong": len(wrong),
        "orders_checked": len(orders),
        "events_checked": len(events),
        "flows": dict(by_flow),
        "examples": {"lost": lost[:10], "double_applied": double[:10], "wrong": wrong[:10]},
    }


# Every event of the storm is about one of its orders, so none may end `unmatched`
# (a PaymentIntent's event left waiting for its session, for good, would be one).
FINAL_EVENT = frozenset({"processed", "ignored"})


# ---------------------------------------------------------------- one run


Chaos = Callable[[dict[str, Any], list["subprocess.Popen[bytes]"], Storm, asyncio.Event],
                 Coroutine[Any, Any, None]]  # fmt: skip


@contextlib.asynccontextmanager
async def storm_stage(server: str | None = None) -> AsyncIterator[dict[str, Any]]:
    """Steps 1-3: the shop, the sandbox, the orders and their flows, the storm file; on
    the DATABASE_URL server, or `server`."""
    storm = Storm()
    started = time.monotonic()
    with scratch_database(server) as database_url, tempfile.TemporaryDirectory() as scratch:
        async with sandbox_process("--seed", str(SEED)) as sandbox_url:
            env = storm_env(database_url, sandbox_url)
            manage(env, "migrate", "--noinput", "-v0")
            manage(env, "seed_demo")
            with psycopg.connect(database_url) as conn:
                initial = {
                    sku: (on_hand, reserved)
                    for sku, on_hand, reserved in conn.execute(
                        "SELECT sku, on_hand, reserved FROM catalog_variant WHERE active"
                        " ORDER BY sku"
                    )
                }
            async with (
                shop_process(env) as url,
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http,
            ):
                sandbox = Sandbox(http, sandbox_url)
                orders = await orders_create(http, url, list(initial))
                await _gather_limited(
                    SETUP_CONCURRENCY,
                    [lambda o=o: sandbox.flow(o) for o in orders],  # type: ignore[misc]
                )
                events = await sandbox.events()
                rng = random.Random(SEED)  # noqa: S311 - a reproducible storm
                bodies = storm_deliveries(events, rng)
                failing = [e["id"] for e in events if rng.random() < FAIL_FIRST_SHARE]
                with psycopg.connect(database_url, autocommit=True) as conn:
                    conn.execute(FAIL_FIRST_DDL)
                    with conn.cursor() as cursor:
                        cursor.executemany(
                            "INSERT INTO bench_fail_first VALUES (%s)", [(i,) for i in failing]
                        )
                storm.orders, storm.events, storm.deliveries = len(orders), len(events), len(bodies)
                storm.forced_failures = len(failing)
                storm.setup_seconds = time.monotonic() - started
                yield {
                    "storm": storm,
                    "env": env,
                    "url": url,
                    "database_url": database_url,
                    "http": http,
                    "sandbox": sandbox,
                    "orders": orders,
                    "events": events,
                    "initial": initial,
                    "file": signed_file(Path(scratch) / "storm.tsv", bodies),
                }


async def deliver(
    url: str, path: str, file: Path, connections: int = DELIVERY_CONNECTIONS
) -> WrkRun:
    """Every line of `file` POSTed once to `path` by wrk over `connections` connections."""
    threads = 2
    return await wrk(url + path, connections=connections, seconds=SETTLE_TIMEOUT,
                     threads=threads, args=[str(file), path, str(threads), "0"],
                     once=file.parent)  # fmt: skip


async def storm_run(
    chaos: Chaos | None = None, server: str | None = None, *, baselines: bool = False
) -> Storm:
    """One storm, with `chaos` (bench.chaos) running beside the deliveries if given;
    `baselines`: then the hot-order storm, and both fed to the seed-style handler."""
    async with storm_stage(server) as stage:
        storm: Storm = stage["storm"]
        database_url, url = stage["database_url"], stage["url"]
        stop = asyncio.Event()
        with event_workers(stage["env"], STORM_WORKERS) as workers:
            started = time.monotonic()
            sampler = asyncio.create_task(backlog_sample(database_url, started, storm, stop))
            chaos_task = asyncio.create_task(chaos(stage, workers, storm, stop)) if chaos else None
            try:
                storm.wrk = await deliver(url, "/webhooks/stripe", stage["file"])
                storm.redelivered = await redeliver_missing(
                    stage["http"], url, database_url, stage["events"]
                )
                last_delivery = time.monotonic()
                storm.delivery_seconds = last_delivery - started
                if not await settled(database_url, storm.events,
                                     last_delivery + SETTLE_TIMEOUT):  # fmt: skip
                    storm.problems.append(f"not settled {SETTLE_TIMEOUT:g} s after the storm")
                done = time.monotonic()
                storm.settle_seconds = done - started
                storm.after_last_delivery_seconds = done - last_delivery
            finally:
                stop.set()
                for task in (sampler, chaos_task):
                    if task is not None:
                        await task
            hot = await hot_storm(stage) if baselines else None
        orders = stage["orders"] + (hot["orders"] if hot else [])
        events = stage["events"] + (hot["events"] if hot else [])
        truth = await sandbox_truth(stage["sandbox"], orders)
        storm.report = correctness(database_url, events, orders, truth, stage["initial"])
        if hot is not None:
            # After the report: the seed-style handler writes to the same orders.
            await seed_style_runs(stage, hot)
    return storm


async def hot_storm(stage: dict[str, Any]) -> dict[str, Any]:
    """HOT_ORDERS orders, each declined HOT_DECLINES times and then paid, their events
    delivered like the storm's (duplicates, reordering) to DjangoMart with the event
    workers running (inside event_workers()); returns what seed_style_runs replays."""
    storm: Storm = stage["storm"]
    url, sandbox = stage["url"], stage["sandbox"]
    known = {e["id"] for e in stage["events"]}
    sku = next(iter(stage["initial"]))
    created = await orders_create(stage["http"], url, [sku], count=HOT_ORDERS)
    orders = [Order(o.id, o.session_id, "hot", o.sku) for o in created]

    async def declines(order: Order) -> None:
        for _ in range(HOT_DECLINES):
            await sandbox.pay(order.session_id, card=DECLINED_CARD)
        await sandbox.pay(order.session_id, card=GOOD_CARD)

    await asyncio.gather(*(declines(o) for o in orders))
    events = [e for e in await sandbox.events() if e["id"] not in known]
    bodies = storm_deliveries(events, random.Random(SEED + 1))  # noqa: S311 - reproducible
    file = signed_file(stage["file"].parent / "hot.tsv", bodies)
    run = await deliver(url, "/webhooks/stripe", file)
    await redeliver_missing(stage["http"], url, stage["database_url"], events)
    expected = storm.events + len(events)
    if not await settled(stage["database_url"], expected, time.monotonic() + SETTLE_TIMEOUT):
        storm.problems.append("the hot-order storm did not settle")
    storm.baselines["hot"] = {"orders": HOT_ORDERS, "events": len(events),
                              "deliveries": len(bodies), "djangomart": run.as_dict()}  # fmt: skip
    return {"orders": orders, "events": events, "file": file}


async def seed_style_runs(stage: dict[str, Any], hot: dict[str, Any]) -> None:
    """The same storm, then the same hot-order storm, to the seed-style handler."""
    storm: Storm = stage["storm"]
    with psycopg.connect(stage["database_url"], autocommit=True) as conn:
        conn.execute(NAIVE_DDL)
    seed = await deliver(stage["url"], "/bench/seed-style", stage["file"])
    storm.baselines["storm"] = {
        "djangomart": None if storm.wrk is None else storm.wrk.as_dict(),
        "seed_style": seed.as_dict(),
    }
    hot_seed = await deliver(stage["url"], "/bench/seed-style", hot["file"])
    storm.baselines["hot"]["seed_style"] = hot_seed.as_dict()


def backlog_plot(storm: Storm, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 4.2))
    times = [t for t, _, _ in storm.backlog]
    axis.plot(times, [s for _, s, _ in storm.backlog], label="events stored")
    axis.plot(times, [u for _, _, u in storm.backlog], label="backlog (stored, not final)")
    axis.axvline(storm.delivery_seconds, color="grey", linestyle="--", label="last delivery")
    for when, what in storm.chaos.get("timeline", []):
        axis.axvline(when, color="red" if "postgres" in what else "orange", alpha=0.4, lw=0.8)
    axis.set_xlabel("seconds since the first delivery")
    axis.set_ylabel("events")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


_MEASURED: dict[str, Storm] = {}


async def _storm() -> Storm:
    if "storm" not in _MEASURED:
        storm = await storm_run(baselines=True)
        backlog_plot(storm, RESULTS / "storm.png",
                     f"Storm: {storm.deliveries:,} deliveries of {storm.events:,} events,"
                     f" {STORM_WORKERS} workers")  # fmt: skip
        _MEASURED["storm"] = storm
    return _MEASURED["storm"]


@register("storm.events_per_s")
async def storm_events_per_s() -> Result:
    storm = await _storm()
    details = {**storm.details(), "plot": str(RESULTS / "storm.png")}
    return Result("storm.events_per_s", storm.events_per_s, "events/s settled",
                  EVENTS_PER_S_TARGET, details=details,
                  error="; ".join(storm.problems) or None)  # fmt: skip


@register("storm.correctness")
async def storm_correctness() -> Result:
    storm = await _storm()
    return Result("storm.correctness", storm.errors, "lost + double-applied + wrong", 0,
                  higher_is_better=False, details=storm.report,
                  error="; ".join(storm.problems) or None)  # fmt: skip


@register("storm.hot_orders_ack_p99")
async def storm_hot_orders_ack_p99() -> Result:
    """Thousands of events for HOT_ORDERS orders: the seed-style handler's ack p99 over
    DjangoMart's (workers running), same server, same deliveries."""
    storm = await _storm()
    hot = storm.baselines.get("hot", {})
    ours, seed = hot.get("djangomart"), hot.get("seed_style")
    if not ours or not seed:
        return Result("storm.hot_orders_ack_p99", 0.0, "x lower p99", HOT_P99_TARGET,
                      error="the hot-order storm did not run")  # fmt: skip
    return Result("storm.hot_orders_ack_p99", seed["p99_ms"] / ours["p99_ms"],
                  "x lower p99 than seed-style", HOT_P99_TARGET,
                  details=storm.baselines, error="; ".join(storm.problems) or None)  # fmt: skip
