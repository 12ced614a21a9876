"""Checkout contention (issue 9, scenario 4): CHECKOUTS concurrent `POST /api/v1/checkout`
for one unit each of a variant with UNITS units (500 for 50; 200 for 20 in `make
bench-quick`), while every Stripe API call takes API_LATENCY (200 ms, the sandbox's
`--api-latency-min/--api-latency-max`). Exactly UNITS must be sold, every other request
refused with a clean 409 `out_of_stock`, and the sales must go as fast as 200 ms per
Stripe call allows at the server's concurrency: the proof that no lock is held across
the Stripe call.

The shop runs as production does (bench.ingest.shop_process: gunicorn with
gunicorn.conf.py, DEBUG off, on a fresh migrated database), pointed at the sandbox.

checkout.contention, the ratio of the measured sales rate to the allowed one:

    S             = requests the server serves at once, as gunicorn itself reads the
                    running master's command line with gunicorn.conf.py and the shop's
                    environment (WEB_CONCURRENCY, GUNICORN_CMD_ARGS): workers for the
                    sync worker, workers x threads for gthread
    ideal_s       = ceil(UNITS / min(S, CHECKOUTS)) x API_LATENCY
    allowed_rate  = UNITS / ideal_s        (= S / API_LATENCY when S divides UNITS)
    measured_rate = UNITS / (time from the first request written to the UNITS-th 201)
    value         = measured_rate / allowed_rate = ideal_s / to_last_sale_s;  target 0.8

Why this is the bound: checkout.py reserves the stock in one short transaction
(_order_create: the variant's row lock, the check, the order, the reservation) and
commits before it calls Stripe (_session_ensure); a refusal (OutOfStock) is raised inside
that transaction, before any Stripe call. So a sale holds a server slot for one Stripe
call and no lock meanwhile; S sales wait for Stripe at once, in ceil(UNITS / S) rounds.
Refusals cannot come before the last reservation (until then every request finds a
unit), so they are left out of the rate; their times are in the details and the plot.
If a lock were held across the Stripe call (the variant's row, or a transaction spanning
the request), the sales would serialise: UNITS x API_LATENCY = 10 s for 50, a value of at
most 1 / min(S, UNITS) (0.1 with the default 5 workers x 2 threads on 2 cores). With
S = 1 the two cannot be told apart, so that is an error.

What the bound leaves out, measured beside it: the shop's own work per sale (the
details' lone_checkout_ms, checkouts one at a time on the same server: API_LATENCY over
it, lone_ceiling, is the most the value can reach on this machine), and the reservation's
critical section, serialised per variant by design (the row lock is what prevents an
oversell): with many slots (gthread) S of them queue for it before Stripe is reached,
and the value falls with no lock held across the call. The sandbox's request log tells
the two apart: stripe.max_in_flight, the most session creations that arrived within
API_LATENCY of each other, is S (or UNITS) when the calls overlap, and would be 1 with a
lock held across them.

A run fails (Result.error, whatever the value) unless: exactly UNITS answers are 201 and
every other is a 409 JSON `{"code": "out_of_stock"}` naming the SKU with 0 available (any
other status, any 5xx, any connection error fails); the sandbox created exactly UNITS
sessions, one per sold order, all answered 200, and got no other API request; and in the
database the variant has 0 available, UNITS on hand and UNITS reserved, held by exactly
UNITS order lines of one unit on UNITS pending orders with their sessions (the 201s'),
no other order was created, nothing was sold or moved in the ledger, and no variant's
stock is negative.

The generator (checkouts_burst, in this process) opens one connection per checkout
before the clock starts and then writes every request at once; the details give how
long writing them all took and this process's CPU time over the race.
"""

import asyncio
import http.client
import io
import json
import math
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import psutil

from bench import Result, register
from bench.ingest import QUICK, REPO, RESULTS, scratch_database, shop_env, shop_process
from bench.sandbox import API_KEY, AUTH, HOST, free_port, sandbox_process

CHECKOUTS = 200 if QUICK else 500
UNITS = 20 if QUICK else 50
API_LATENCY = 0.2  # seconds per Stripe API call
TARGET = 0.8
PHASE_TIMEOUT = 60.0  # seconds, per phase
# Checkouts of another variant before the measurement, per server slot: every worker's
# database connection and its HTTP connection to Stripe are open when the race starts,
# as on a server that has been up for a while.
WARMUP_PER_SLOT = 3
# Checkouts one at a time after the warm-up: what one sale costs with no contention,
# the ceiling of the value on this machine (API_LATENCY over that time).
LONE_CHECKOUTS = 5

SKU = "CONTENTION-POSTER"
PRODUCT_NAME = "Contention Poster"
WARMUP_SKU = "CONTENTION-WARMUP"
WARMUP_STOCK = 10_000
SESSIONS_PATH = "/v1/checkout/sessions"


# -- In a child process, with the shop's environment: Django and gunicorn's own config --


# Django is set up before this module is imported: the bench modules it imports may use
# models at import time.
_CHILD_BOOT = (
    "import os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'djangomart.settings'); "
    "import django; django.setup(); import bench.contention; bench.contention.child_main()"
)


def child_main() -> None:
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "concurrency":
        result = _server_concurrency(args)
    else:
        result = _seed() if mode == "seed" else _database_state()
    print(json.dumps(result))


def _server_concurrency(args: list[str]) -> dict[str, Any]:
    """What a gunicorn started with `args` runs, as gunicorn itself reads them with
    gunicorn.conf.py and the environment (WEB_CONCURRENCY, GUNICORN_CMD_ARGS)."""
    from gunicorn.app.wsgiapp import WSGIApplication
    from gunicorn.workers.gthread import ThreadWorker
    from gunicorn.workers.sync import SyncWorker

    sys.argv = ["gunicorn", *args]
    config = WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").cfg
    worker = config.worker_class
    workers, threads = int(config.workers), int(config.threads)
    if issubclass(worker, ThreadWorker):
        slots: int | None = workers * threads
    elif issubclass(worker, SyncWorker):
        slots = workers
    else:
        slots = None  # an async worker: no fixed number of requests at once
    return {
        "worker_class": config.worker_class_str,
        "workers": workers,
        "threads": threads,
        "slots": slots,
    }


def _seed() -> dict[str, Any]:
    """The contended variant with exactly UNITS units and a warm-up one with plenty, both
    restocked through the stock ledger as staff or the demo seed would."""
    from django.db import transaction

    from djangomart.catalog.models import Category, Product, StockMovement, Variant
    from djangomart.catalog.services import stock_changes

    with transaction.atomic():
        category = Category.objects.create(slug="contention", name="Contention")
        product = Product.objects.create(
            slug="contention-poster", name=PRODUCT_NAME, category=category
        )
        warmup = Product.objects.create(
            slug="contention-warmup", name="Warm-up Mug", category=category
        )
        contended = Variant.objects.create(product=product, sku=SKU, label="A2", price=2500)
        other = Variant.objects.create(product=warmup, sku=WARMUP_SKU, price=1500)
        stock_changes(
            {contended.pk: UNITS, other.pk: WARMUP_STOCK},
            reason=StockMovement.Reason.RESTOCK,
            note="bench.contention",
        )
    return {"variant_id": contended.pk}


def _database_state() -> dict[str, Any]:
    """What the database says once the race is over, for _database_problems."""
    from django.db.models import F, Q

    from djangomart.catalog.models import StockMovement, Variant
    from djangomart.orders.models import Order, OrderLine

    variant = Variant.objects.get(sku=SKU)
    holding = Order.objects.filter(lines__variant=variant).distinct()
    orders = [
        {
            "id": str(order.id),
            "status": order.status,
            "payment_status": order.payment_status,
            "session": order.stripe_checkout_session_id,
            "stock_released": order.stock_released,
        }
        for order in holding
    ]
    lines = list(OrderLine.objects.filter(variant=variant).values_list("quantity", flat=True))
    movements = StockMovement.objects.filter(variant=variant).values_list("reason", "delta")
    negative = Variant.objects.filter(
        Q(on_hand__lt=0) | Q(reserved__lt=0) | Q(on_hand__lt=F("reserved"))
    )
    return {
        "on_hand": variant.on_hand,
        "reserved": variant.reserved,
        "available": variant.available,
        "orders": orders,
        "line_quantities": lines,
        "orders_total": Order.objects.count(),
        "warmup_orders": Order.objects.filter(lines__variant__sku=WARMUP_SKU).distinct().count(),
        "movements": [list(m) for m in movements],
        "negative_stock_skus": list(negative.values_list("sku", flat=True)),
    }


def child_run(env: dict[str, str], mode: str, *args: str) -> dict[str, Any]:
    """child_main's `mode` in a fresh interpreter with `env`; its answer is stdout's last
    line (Django's JSON log lines, if any, come before it)."""
    completed = subprocess.run(
        [sys.executable, "-c", _CHILD_BOOT, mode, *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=PHASE_TIMEOUT,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"bench.contention {mode} failed:\n{completed.stderr}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def gunicorn_master(env: dict[str, str]) -> psutil.Process:
    """The gunicorn master shop_process started: this process's child serving env's PORT."""
    bind = f"{HOST}:{env['PORT']}"
    masters = [
        child
        for child in psutil.Process().children()
        if "gunicorn" in child.cmdline() and bind in " ".join(child.cmdline())
    ]
    if len(masters) != 1:
        raise RuntimeError(f"{len(masters)} gunicorn masters bound to {bind}")
    return masters[0]


def server_concurrency(env: dict[str, str]) -> dict[str, Any]:
    """_server_concurrency of the running shop, from its master's own command line."""
    command = gunicorn_master(env).cmdline()
    return child_run(env, "concurrency", *command[command.index("gunicorn") + 1 :])


# -- The race ---------------------------------------------------------------------------


@dataclass
class Answer:
    started: float  # perf_counter() when the request was written
    done: float = 0.0
    status: int = 0  # 0: no answer (a connection error or timeout)
    body: Any = None
    is_json: bool = False
    failure: str | None = None

    @property
    def latency(self) -> float:
        return self.done - self.started

    @property
    def code(self) -> str | None:
        return self.body.get("code") if isinstance(self.body, dict) else None


class _Received:
    """The socket http.client.HTTPResponse reads from: an answer received whole."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self.raw)


def _answer_parse(raw: bytes, answer: Answer) -> None:
    response = http.client.HTTPResponse(_Received(raw))  # type: ignore[arg-type]
    response.begin()
    body = response.read()
    answer.status = response.status
    if (response.getheader("Content-Type") or "").startswith("application/json"):
        answer.body = json.loads(body)
        answer.is_json = True


def _checkout_request(host: str, sku: str, index: int) -> bytes:
    body = json.dumps(
        {"email": f"buyer{index}@example.com", "lines": [{"sku": sku, "quantity": 1}]}
    ).encode()
    head = [
        "POST /api/v1/checkout HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "X-Forwarded-Proto: https",  # TLS ends at the proxy in production
        # As a storefront sends it (a UUID4), though every customer here is a new one.
        f"Idempotency-Key: {uuid.uuid4()}",
        "Connection: close",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _answer_read(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answer: Answer
) -> None:
    try:
        raw = await reader.read()  # the server closes after its answer (Connection: close)
        answer.done = time.perf_counter()
        _answer_parse(raw, answer)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        answer.done = answer.done or time.perf_counter()
        answer.failure = f"{type(exc).__name__}: {exc}"
    finally:
        writer.close()


@dataclass
class Burst:
    answers: list[Answer]
    connect_s: float  # opening the connections, before the first request
    written_s: float  # from the first request written to the last
    clock: float  # time.time() - time.perf_counter(), to place the sandbox's times


async def checkouts_burst(url: str, sku: str, count: int) -> Burst:
    """`count` checkouts of one unit of `sku` written at once, each on its own
    connection, opened beforehand: the kernel completes the handshakes and holds them in
    gunicorn's listen backlog until a worker accepts, so the requests are all in the
    server's hands within milliseconds. aiohttp, opening the connections as it sends,
    wrote the last of 500 requests 0.3 s after the first, on the cores the server races
    on; the race would have measured this process."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 80
    requests = [_checkout_request(parts.netloc, sku, index) for index in range(count)]
    opened = time.perf_counter()
    connections = await asyncio.gather(*(asyncio.open_connection(host, port) for _ in range(count)))
    clock = time.time() - time.perf_counter()
    first = time.perf_counter()
    answers = []
    for (_, writer), request in zip(connections, requests, strict=True):
        answers.append(Answer(time.perf_counter()))
        writer.write(request)
    written = time.perf_counter()
    await asyncio.gather(
        *(
            _answer_read(reader, writer, answer)
            for (reader, writer), answer in zip(connections, answers, strict=True)
        )
    )
    return Burst(answers, first - opened, written - first, clock)


@dataclass
class Race:
    server: dict[str, Any]  # _server_concurrency's answer
    burst: Burst
    generator_cpu_s: float
    sessions: list[dict[str, Any]]  # the sandbox's log of the race's session creations
    other_api_requests: int  # /v1 requests during the race that were not those
    lone_s: list[float]  # checkouts one at a time, on the same server, before the race
    warmup_failures: Counter[str] = field(default_factory=Counter)
    database: dict[str, Any] = field(default_factory=dict)

    @property
    def answers(self) -> list[Answer]:
        return self.burst.answers

    def stripe_arrivals(self) -> list[float]:
        """When each session creation reached the sandbox, in seconds since the first
        request was written."""
        return sorted(e["time"] - self.burst.clock - self.first_sent for e in self.sessions)

    @property
    def first_sent(self) -> float:
        return min(a.started for a in self.answers)

    def sales(self) -> list[Answer]:
        """The 201s that carry an order, in the order they were answered."""
        sold = (
            a
            for a in self.answers
            if a.status == 201 and isinstance(a.body, dict) and "order" in a.body
        )
        return sorted(sold, key=lambda a: a.done)

    def refusals(self) -> list[Answer]:
        sold = {id(a) for a in self.sales()}
        return sorted((a for a in self.answers if id(a) not in sold), key=lambda a: a.done)

    @property
    def concurrency(self) -> int:
        """Sales that can wait for Stripe at once: the server's slots, unless the
        generator offers fewer requests (an async worker has no such bound)."""
        return min(self.server["slots"] or CHECKOUTS, CHECKOUTS)

    @property
    def ideal_s(self) -> float:
        return math.ceil(UNITS / self.concurrency) * API_LATENCY

    @property
    def to_last_sale_s(self) -> float:
        sales = self.sales()
        return sales[min(UNITS, len(sales)) - 1].done - self.first_sent if sales else math.inf


async def _sandbox_log(http: aiohttp.ClientSession, sandbox: str) -> dict[str, Any]:
    async with http.get(f"{sandbox}/_sandbox/requests") as response:
        response.raise_for_status()
        log: dict[str, Any] = await response.json()
        return log


def _is_race_session(entry: dict[str, Any]) -> bool:
    params = entry.get("params") or {}
    items = params.get("line_items") or []
    names = [i.get("price_data", {}).get("product_data", {}).get("name", "") for i in items]
    return any(name.startswith(PRODUCT_NAME) for name in names)


async def race_run() -> Race:
    with scratch_database() as database_url:
        latency = str(API_LATENCY)
        flags = ("--api-latency-min", latency, "--api-latency-max", latency)
        async with sandbox_process(*flags) as sandbox:
            env = {
                **shop_env(database_url, free_port()),
                "STRIPE_SECRET_KEY": API_KEY,
                "STRIPE_API_BASE": sandbox,
            }
            async with shop_process(env) as url, aiohttp.ClientSession(headers=AUTH) as control:
                server = server_concurrency(env)
                child_run(env, "seed")
                async with asyncio.timeout(PHASE_TIMEOUT):
                    warm = await checkouts_burst(
                        url, WARMUP_SKU, WARMUP_PER_SLOT * (server["slots"] or 4)
                    )
                    lone = [
                        (await checkouts_burst(url, WARMUP_SKU, 1)).answers[0]
                        for _ in range(LONE_CHECKOUTS)
                    ]
                failures = Counter(
                    f"{a.status} {a.code or a.failure}"
                    for a in warm.answers + lone
                    if a.status != 201
                )
                logged_before = (await _sandbox_log(control, sandbox))["recorded"]
                async with asyncio.timeout(PHASE_TIMEOUT):
                    cpu = time.process_time()
                    burst = await checkouts_burst(url, SKU, CHECKOUTS)
                    cpu = time.process_time() - cpu
                log = await _sandbox_log(control, sandbox)
                # Counted now: the master forks its workers one by one, after the first
                # may already answer.
                server["workers_running"] = len(gunicorn_master(env).children())
            race_entries = log["data"][len(log["data"]) - (log["recorded"] - logged_before) :]
            sessions = [
                e
                for e in race_entries
                if e["method"] == "POST" and e["path"] == SESSIONS_PATH and _is_race_session(e)
            ]
            race = Race(
                server,
                burst,
                cpu,
                sessions,
                other_api_requests=len(race_entries) - len(sessions),
                lone_s=[a.latency for a in lone],
                warmup_failures=failures,
            )
            race.database = child_run(env, "state")
    return race


# -- Verdicts ---------------------------------------------------------------------------


def _answer_problems(race: Race) -> list[str]:
    problems = []
    sales = race.sales()
    if len(sales) != UNITS:
        problems.append(f"{len(sales)} checkouts succeeded for {UNITS} units")
    unclean: Counter[str] = Counter()
    for answer in race.refusals():
        if answer.failure:
            unclean[f"no answer ({answer.failure})"] += 1
        elif answer.status != 409 or not answer.is_json or answer.code != "out_of_stock":
            unclean[f"{answer.status} {answer.code if answer.is_json else 'not JSON'}"] += 1
        elif answer.body.get("available") != 0 or answer.body.get("sku") != SKU:
            unclean[
                f"out_of_stock naming {answer.body.get('sku')} with "
                f"{answer.body.get('available')} available"
            ] += 1
    if unclean:
        problems.append("unclean refusals: " + ", ".join(f"{n} x {w}" for w, n in unclean.items()))
    if race.warmup_failures:
        problems.append(f"warm-up checkouts failed: {dict(race.warmup_failures)}")
    if race.server["workers_running"] != race.server["workers"]:
        problems.append(
            f"gunicorn runs {race.server['workers_running']} workers, its configuration "
            f"says {race.server['workers']}"
        )
    if race.server["slots"] is None:
        problems.append(f"worker class {race.server['worker_class']}: no fixed concurrency")
    elif race.server["slots"] < 2:
        problems.append(
            "the server serves one request at a time: a lock held across the "
            "Stripe call would not show"
        )
    return problems


def _stripe_problems(race: Race) -> list[str]:
    problems = []
    sold = {a.body["order"]["id"] for a in race.sales()}
    sessions = race.sessions
    if len(sessions) != UNITS:
        problems.append(f"the sandbox got {len(sessions)} session creations for {UNITS} sales")
    statuses = Counter(e["status"] for e in sessions)
    if set(statuses) - {200}:
        problems.append(f"session creations answered {dict(statuses)}")
    for_orders = Counter((e["params"].get("metadata") or {}).get("order_id") for e in sessions)
    if set(for_orders) != sold or max(for_orders.values(), default=1) != 1:
        problems.append("the sandbox's sessions are not one per sold order")
    if race.other_api_requests:
        problems.append(f"{race.other_api_requests} other Stripe API requests during the race")
    return problems


def _database_problems(race: Race) -> list[str]:
    db = race.database
    problems = []
    if (db["on_hand"], db["reserved"], db["available"]) != (UNITS, UNITS, 0):
        problems.append(
            f"stock ended on hand {db['on_hand']}, reserved {db['reserved']}, "
            f"available {db['available']} (want {UNITS}, {UNITS}, 0)"
        )
    if db["negative_stock_skus"]:
        problems.append(f"negative stock: {db['negative_stock_skus']}")
    quantities = db["line_quantities"]
    if len(quantities) != UNITS or set(quantities) != {1}:
        problems.append(f"{len(quantities)} order lines hold {sum(quantities)} units")
    sales = {a.body["order"]["id"]: a.body["checkout_session_id"] for a in race.sales()}
    orders = {o["id"]: o for o in db["orders"]}
    if set(orders) != set(sales):
        problems.append(f"{len(orders)} orders hold the variant, {len(sales)} were sold")
    held = ("pending", "unpaid", False)
    bad = [
        o
        for o in orders.values()
        if (o["status"], o["payment_status"], o["stock_released"]) != held
        or o["session"] != sales.get(o["id"])
    ]
    if bad:
        problems.append(f"{len(bad)} sold orders not pending with their session, e.g. {bad[0]}")
    extra = db["orders_total"] - db["warmup_orders"] - len(orders)
    if extra:
        problems.append(f"{extra} orders created besides the sales and the warm-up")
    if db["movements"] != [["restock", UNITS]]:
        problems.append(f"stock ledger of the variant: {db['movements']}")
    return problems


def _max_in_flight(arrivals: list[float]) -> int:
    """The most calls in flight at once, each taking API_LATENCY from its arrival."""
    arrivals = sorted(arrivals)
    most, first = 0, 0
    for last, arrival in enumerate(arrivals):
        while arrivals[first] <= arrival - API_LATENCY:
            first += 1
        most = max(most, last - first + 1)
    return most


def _ms(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {}
    ordered = sorted(seconds)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def contention_plot(race: Race, path: Path) -> Path:
    """Over time: sales, the Stripe calls they made, the ideal sales, refusals (right
    axis); and the latency distribution of sales and refusals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (time_axis, cdf_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    refusal_axis = time_axis.twinx()
    start = race.first_sent
    groups = (
        ("sold (201)", race.sales(), time_axis, "tab:blue"),
        ("refused (409)", race.refusals(), refusal_axis, "tab:orange"),
    )
    for label, answers, axis, color in groups:
        if not answers:
            continue
        counts = range(1, len(answers) + 1)
        axis.step([a.done - start for a in answers], counts, where="post", color=color, label=label)
        latencies = sorted(a.latency * 1000 for a in answers)
        cdf_axis.step(
            latencies, [c / len(answers) for c in counts], where="post", color=color, label=label
        )
    arrivals = race.stripe_arrivals()
    time_axis.step(
        arrivals,
        range(1, len(arrivals) + 1),
        where="post",
        color="tab:green",
        label="sessions requested at Stripe",
    )
    rounds = math.ceil(UNITS / race.concurrency)
    ideal = [min(UNITS, race.concurrency * r) for r in range(rounds + 1)]
    time_axis.step(
        [API_LATENCY * r for r in range(rounds + 1)],
        ideal,
        where="post",
        linestyle="--",
        color="grey",
        label=f"ideal sales ({race.concurrency} at once)",
    )
    time_axis.set_xlabel("seconds since the first request")
    time_axis.set_ylabel("sold (cumulative)")
    refusal_axis.set_ylabel("refused (cumulative)")
    time_axis.set_title("answers over time")
    handles = time_axis.get_legend_handles_labels()
    more = refusal_axis.get_legend_handles_labels()
    time_axis.legend(handles[0] + more[0], handles[1] + more[1], loc="lower right")
    cdf_axis.set_xlabel("latency (ms)")
    cdf_axis.set_ylabel("share of answers")
    cdf_axis.set_title("latency distribution")
    cdf_axis.legend()
    for axis in (time_axis, cdf_axis):
        axis.grid(alpha=0.3)
    figure.suptitle(
        f"Checkout contention: {CHECKOUTS} checkouts for {UNITS} units, "
        f"Stripe {API_LATENCY * 1000:.0f} ms"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


@register("checkout.contention")
async def checkout_contention() -> Result:
    race = await race_run()
    problems = _answer_problems(race)
    if len(race.sales()) == len({a.body["order"]["id"] for a in race.sales()}):
        problems += _stripe_problems(race) + _database_problems(race)
    else:
        problems.append("one order answered twice")
    sales, refusals = race.sales(), race.refusals()
    start = race.first_sent
    allowed_rate = UNITS / race.ideal_s
    measured_rate = UNITS / race.to_last_sale_s
    arrivals = race.stripe_arrivals()
    lone = statistics.median(race.lone_s)
    details = {
        "checkouts": CHECKOUTS,
        "units": UNITS,
        "api_latency_s": API_LATENCY,
        "server": race.server,
        "ideal_s": round(race.ideal_s, 3),
        "to_last_sale_s": round(race.to_last_sale_s, 3),
        "wall_s": round(max(a.done for a in race.answers) - start, 3),
        "allowed_sales_per_s": round(allowed_rate, 1),
        "measured_sales_per_s": round(measured_rate, 1),
        "statuses": dict(Counter(str(a.status) for a in race.answers)),
        "refusal_codes": dict(Counter(str(a.code) for a in refusals)),
        "sale_latency": _ms([a.latency for a in sales]),
        "refusal_latency": _ms([a.latency for a in refusals]),
        "refusals_after_last_sale": sum(1 for a in refusals if sales and a.done > sales[-1].done),
        "lone_checkout_ms": round(lone * 1000, 1),
        "lone_ceiling": round(API_LATENCY / lone, 2),
        "stripe": {
            "sessions_created": len(race.sessions),
            "max_in_flight": _max_in_flight(arrivals),
            "first_call_after_s": round(arrivals[0], 3) if arrivals else None,
        },
        "generator": {
            "connect_s": round(race.burst.connect_s, 3),
            "all_written_within_s": round(race.burst.written_s, 4),
            "cpu_s": round(race.generator_cpu_s, 3),
        },
        "database": {
            **{k: v for k, v in race.database.items() if k != "orders"},
            "line_quantities": dict(Counter(race.database["line_quantities"])),
        },
        "plot": str(contention_plot(race, RESULTS / "contention.png")),
    }
    return Result(
        "checkout.contention",
        measured_rate / allowed_rate,
        "x allowed rate",
        TARGET,
        details=details,
        error="; ".join(problems) or None,
    )
