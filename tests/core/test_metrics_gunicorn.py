"""/metrics counts what every process did (multi-process mode): real gunicorn with two
workers sharing a PROMETHEUS_MULTIPROC_DIR, webhooks and checkouts sent until both
workers served some, then one scrape gives the exact totals of the scripted flow and the
database's gauges; then a Stripe event worker process processes the event, a gunicorn
worker exits, and the next scrape has the worker's processing and still every count."""

import http.client
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from django.conf import settings
from prometheus_client.mmap_dict import MmapedDict

from djangomart.orders.models import Order
from tests.core.metrics_helpers import Samples, samples, value
from tests.payments.conftest import WEBHOOK_SECRET, event_json, session_object, sign
from tests.payments.race_helpers import order_pending, wait_until
from tests.payments.test_web_crash import free_port, server_database_url

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "metrics-token-for-the-gunicorn-test"  # obviously fake
WEBHOOKS = "djangomart_stripe_webhooks_received_total"


@dataclass
class Web:
    server: subprocess.Popen[bytes]
    port: int
    metrics_dir: Path
    env: dict[str, str]

    def request(
        self, method: str, path: str, body: bytes | None = None, **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        # A connection per request (and Connection: close), so that each is accepted
        # anew, by whichever worker gets there first.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers={"Connection": "close", **headers})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def webhook(self, payload: str, secret: str = WEBHOOK_SECRET) -> int:
        status, _, _ = self.request(
            "POST", "/webhooks/stripe", payload.encode(),
            **{"Content-Type": "application/json", "Stripe-Signature": sign(payload, secret)},
        )  # fmt: skip
        return status

    def scrape(self) -> Samples:
        status, _, body = self.request("GET", "/metrics", Authorization=f"Bearer {TOKEN}")
        assert status == 200, body
        return samples(body.decode())

    def workers(self) -> set[int]:
        return {child.pid for child in psutil.Process(self.server.pid).children()}

    def counts_of(self, pid: int) -> dict[str, float]:
        """What worker `pid` itself counted of the webhook deliveries, from its own file."""
        path = self.metrics_dir / f"counter_{pid}.db"
        if not path.exists():
            return {}
        totals: dict[str, float] = {}
        for key, count, _, _ in MmapedDict.read_all_values_from_file(str(path)):  # type: ignore[no-untyped-call]
            _, name, labels, _ = json.loads(key)
            if name == WEBHOOKS:
                outcome = labels["outcome"] if labels["outcome"] != "refused" else labels["reason"]
                totals[outcome] = totals.get(outcome, 0) + count
        return totals


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": server_database_url(),
        "STRIPE_WEBHOOK_SECRETS": WEBHOOK_SECRET,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "METRICS_TOKEN": TOKEN,
        "RATE_LIMIT_CHECKOUT": "100000/m",
    }
    log = (tmp_path / "gunicorn.log").open("wb")
    server = subprocess.Popen(
        [str(Path(settings.BASE_DIR) / ".venv/bin/gunicorn"), "-c", "gunicorn.conf.py",
         "--bind", f"127.0.0.1:{port}", "--workers", "2"],
        cwd=settings.BASE_DIR, env=env, stdout=log, stderr=log,
    )  # fmt: skip
    web = Web(server, port, metrics_dir, env)
    try:
        wait_until(lambda: len(web.workers()) == 2 and healthy(web), timeout=60, what="gunicorn")
        yield web
    finally:
        # Quick shutdown: nothing is in flight, and a graceful one costs a second or two.
        server.send_signal(signal.SIGQUIT)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
        log.close()


def healthy(web: Web) -> bool:
    try:
        return web.request("GET", "/healthz")[0] == 200
    except OSError:
        return False


def customer_event() -> str:
    return event_json("customer.created", {"id": "cus_metrics", "object": "customer"})


def test_one_scrape_counts_the_deliveries_and_checkouts_of_both_workers(web: Web) -> None:
    order = order_pending()
    [first, second] = sorted(web.workers())

    # New deliveries of a type no handler reads (stored ignored) until each worker has
    # counted some: the kernel hands connections to whichever worker accepts first.
    sent: list[str] = []
    while len(sent) < 6 or not (web.counts_of(first) and web.counts_of(second)):
        assert len(sent) < 300, "one gunicorn worker never got a request"
        sent.append(customer_event())
        assert web.webhook(sent[-1]) == 200
    duplicates = sent[:5]
    for payload in duplicates:
        assert web.webhook(payload) == 200
    for payload in sent[:4]:
        assert web.webhook(payload, secret="whsec_not_ours") == 400
    status, _, _ = web.request("POST", "/webhooks/stripe", b"{oops",
                               **{"Stripe-Signature": sign("{oops")})  # fmt: skip
    assert status == 400
    paid = event_json("checkout.session.completed", session_object(order))
    assert web.webhook(paid) == 200  # due for an event worker: none runs here
    unknown_sku = {"email": "a@example.com", "lines": [{"sku": "NOPE", "quantity": 1}]}
    for _ in range(3):
        status, _, _ = web.request("POST", "/api/v1/checkout", json.dumps(unknown_sku).encode(),
                                   **{"Content-Type": "application/json"})  # fmt: skip
        assert status == 404

    assert web.request("GET", "/metrics")[0] == 401
    status, headers, _ = web.request("GET", "/metrics", Authorization=f"Bearer {TOKEN}")
    assert status == 200
    assert "Set-Cookie" not in headers  # no session work for a scrape
    found = web.scrape()

    assert value(found, WEBHOOKS, type="customer.created", outcome="new", reason="") == len(sent)
    assert value(found, WEBHOOKS, type="customer.created", outcome="duplicate", reason="") == 5
    assert value(found, WEBHOOKS, type="unknown", outcome="refused", reason="bad_signature") == 4
    assert value(found, WEBHOOKS, type="unknown", outcome="refused", reason="bad_json") == 1
    assert value(found, WEBHOOKS, type="checkout.session.completed", outcome="new", reason="") == 1
    assert value(found, "djangomart_checkouts_total", outcome="refused", reason="unknown_sku") == 3
    # Each worker counted its own share, and the scrape is their sum.
    shares = [web.counts_of(pid).get("new", 0) for pid in (first, second)]
    assert all(shares)
    assert sum(shares) == len(sent) + 1

    inbox = {s: value(found, "djangomart_stripe_inbox_events", status=s)
             for s in ("received", "failed", "unmatched", "dead")}  # fmt: skip
    assert inbox == {"received": 1, "failed": 0, "unmatched": 0, "dead": 0}
    assert 0 <= value(found, "djangomart_stripe_inbox_oldest_unprocessed_age_seconds") < 60
    assert value(found, "djangomart_orders", status="pending") == 1
    assert value(found, "djangomart_orders", status="paid") == 0
    assert value(found, "djangomart_orders_needing_attention") == 0

    # A Stripe event worker, another process sharing the directory, pays the order; and
    # a gunicorn worker that ends (the master starts another) leaves its counts behind.
    events_worker = subprocess.Popen(
        [sys.executable, "manage.py", "stripe_events_worker"], cwd=settings.BASE_DIR,
        env=web.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        os.kill(first, signal.SIGTERM)
        wait_until(lambda: first not in web.workers() and len(web.workers()) == 2
                   and healthy(web), timeout=60, what="a new gunicorn worker")  # fmt: skip
        wait_until(lambda: Order.objects.get(pk=order.pk).status == "paid", timeout=60,
                   what="the event worker")  # fmt: skip
    finally:
        events_worker.terminate()
        events_worker.wait(20)
    again = web.scrape()
    assert value(again, WEBHOOKS, type="customer.created", outcome="new", reason="") == len(sent)
    assert value(again, WEBHOOKS, type="unknown", outcome="refused", reason="bad_signature") == 4
    processed = "djangomart_stripe_events_processed_total"
    assert value(again, processed, type="checkout.session.completed", outcome="processed") == 1
    assert value(again, "djangomart_stripe_event_receipt_to_processed_seconds_count") == 1
    assert value(again, "djangomart_stripe_inbox_events", status="received") == 0
    assert value(again, "djangomart_orders", status="pending") == 0
    assert value(again, "djangomart_orders", status="paid") == 1
