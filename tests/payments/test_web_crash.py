"""The real ingest path killed after its COMMIT: the webhook view, served by gunicorn in
a process of its own, whose worker is SIGKILLed the moment PostgreSQL confirmed the
ingest's commit (tests/payments/crashing_wsgi.py). Stripe sees the connection drop with
no answer and redelivers; the redelivery is a duplicate and the order is paid once.

The server must write to this test's own database whatever DATABASE_URL looks like (a
TCP address, or the embedded PostgreSQL's Unix socket given as `?host=/dir`), and the
test proves the kill happened rather than trusting it: a server that only answered an
error, or that committed somewhere else, would make the rest of the test meaningless."""

import http.client
import json
import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil
import pytest
from django.conf import settings
from django.db import connection

from djangomart.catalog.models import StockMovement, Variant
from djangomart.orders.models import Order, OrderEvent
from djangomart.payments.models import StripeEvent
from tests.payments.conftest import WEBHOOK_SECRET, event_json, run_jobs, session_object, sign
from tests.payments.race_helpers import is_due, order_pending, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_database_url() -> str:
    """This run's DATABASE_URL with its database swapped for the test database. Rebuilding
    a URL from HOST and PORT loses a Unix socket (django-environ keeps it in OPTIONS),
    and the server then talks to another PostgreSQL, or to none."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path=f"/{connection.settings_dict['NAME']}"))


@dataclass
class Web:
    server: subprocess.Popen[bytes]
    port: int
    armed: Path
    log: Path

    @property
    def fired(self) -> Path:
        return self.armed.with_name(self.armed.name + ".fired")

    def post(self, payload: str) -> tuple[int, dict[str, Any]]:
        """POSTs a signed delivery as Stripe does; raises if the connection drops."""
        # The timeout only keeps a wedged server from hanging the suite.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", "/webhooks/stripe", body=payload.encode(), headers={
                "Content-Type": "application/json", "Stripe-Signature": sign(payload)
            })  # fmt: skip
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def healthy(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", "/healthz")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def workers(self) -> set[int]:
        return {child.pid for child in psutil.Process(self.server.pid).children()}


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    """gunicorn (one worker) serving crashing_wsgi on this run's test database."""
    port = free_port()
    env = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": server_database_url(),
        "STRIPE_WEBHOOK_SECRETS": WEBHOOK_SECRET,
        "CRASH_ARMED_FILE": str(tmp_path / "armed"),
        "WEB_CONCURRENCY": "1",
    }
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as log_file:
        server = subprocess.Popen(
            [str(Path(settings.BASE_DIR) / ".venv/bin/gunicorn"), "-c", "gunicorn.conf.py",
             "--bind", f"127.0.0.1:{port}", "--workers", "1",
             "tests.payments.crashing_wsgi:application"],
            cwd=settings.BASE_DIR, env=env, stdout=log_file, stderr=log_file,
        )  # fmt: skip
    web = Web(server, port, tmp_path / "armed", log)
    try:
        wait_until(web.healthy, timeout=60, what="gunicorn to serve /healthz")
        yield web
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


def test_a_web_worker_killed_after_the_ingest_commit_turns_the_redelivery_into_a_duplicate(
    web: Web,
) -> None:
    # The server stores into this test's database: an unarmed delivery shows up here.
    probe = event_json("customer.created", {"id": "cus_probe", "object": "customer"})
    assert web.post(probe) == (200, {"received": True, "duplicate": False})
    assert StripeEvent.objects.filter(pk=json.loads(probe)["id"]).exists(), (
        "the server under test does not write to this test's database"
    )

    order = order_pending()
    variant = Variant.objects.get(sku=order.lines.get().sku)
    payload = event_json(
        "checkout.session.completed",
        session_object(order, payment_intent=f"pi_test_{uuid.uuid4().hex[:24]}"),
    )
    event_id = json.loads(payload)["id"]
    [worker] = web.workers()
    web.armed.write_text(event_id)

    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        web.post(payload)  # the worker died: no answer at all

    # It was the kill, at that commit, of that worker: the hook says so, and so does
    # gunicorn's master, which saw its worker end by SIGKILL.
    assert not web.armed.exists()
    assert web.fired.read_text() == str(worker)
    event = StripeEvent.objects.get(pk=event_id)
    assert (event.status, event.delivery_count, is_due(event_id)) == ("received", 1, True)

    # Stripe redelivers; gunicorn's master has started a new worker.
    wait_until(web.healthy, timeout=60, what="the respawned worker")
    assert worker not in web.workers()
    assert f"Worker (pid:{worker}) was sent SIGKILL" in web.log.read_text()
    assert web.post(payload) == (200, {"received": True, "duplicate": True})

    run_jobs()

    event = StripeEvent.objects.get(pk=event_id)
    assert StripeEvent.objects.filter(pk=event_id).count() == 1
    assert (event.status, event.delivery_count, event.attempts) == ("processed", 2, 1)
    order = Order.objects.get(pk=order.pk)
    transitions = order.events.filter(kind=OrderEvent.Kind.TRANSITION)
    assert list(transitions.values_list("from_status", "to_status", "stripe_event_id")) == [
        ("pending", "paid", event_id)
    ]
    assert (order.status, order.amount_paid, order.payments.count()) == ("paid", order.total, 1)
    sales = StockMovement.objects.filter(order=order, reason=StockMovement.Reason.SALE)
    assert list(sales.values_list("variant_id", "delta")) == [(variant.pk, -2)]
    sold = Variant.objects.get(pk=variant.pk)
    assert (sold.on_hand, sold.reserved) == (variant.on_hand - 2, variant.reserved - 2)
