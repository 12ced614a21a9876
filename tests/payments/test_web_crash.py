"""The real ingest path killed after its COMMIT: the webhook view, served by gunicorn in
a process of its own, whose worker is SIGKILLed the moment PostgreSQL confirmed the
ingest's commit (tests/payments/crashing_wsgi.py). Stripe sees the connection drop with
no answer and redelivers; the redelivery is a duplicate and the order is paid once."""

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

import pytest
from django.conf import settings
from django.db import connection

from djangomart.orders.models import Order, OrderEvent
from djangomart.payments.models import StripeEvent
from tests.payments.conftest import WEBHOOK_SECRET, event_json, run_jobs, session_object, sign
from tests.payments.race_helpers import jobs_for, order_pending, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def database_url() -> str:
    """A DATABASE_URL for this run's test database (test_<name>)."""
    db = connection.settings_dict
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{db.get('USER') or 'postgres'}@{host}:{port}/{db['NAME']}"


@dataclass
class Web:
    port: int
    armed: Path

    def post(self, payload: str) -> tuple[int, dict[str, Any]]:
        """POSTs a signed delivery as Stripe does; raises if the connection drops."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
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


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    """gunicorn (one sync worker) serving crashing_wsgi on this run's test database."""
    port = free_port()
    armed = tmp_path / "armed"
    env = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": database_url(),
        "STRIPE_WEBHOOK_SECRETS": WEBHOOK_SECRET,
        "CRASH_ARMED_FILE": str(armed),
        "WEB_CONCURRENCY": "1",
    }
    server = subprocess.Popen(
        [str(Path(settings.BASE_DIR) / ".venv/bin/gunicorn"), "-c", "gunicorn.conf.py",
         "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "tests.payments.crashing_wsgi:application"],
        cwd=settings.BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    server_web = Web(port, armed)
    try:
        wait_until(server_web.healthy, timeout=30, what="gunicorn to serve /healthz")
        yield server_web
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
        assert server.stderr is not None
        server.stderr.close()


def test_a_web_worker_killed_after_the_ingest_commit_turns_the_redelivery_into_a_duplicate(
    web: Web,
) -> None:
    order = order_pending()
    payload = event_json(
        "checkout.session.completed",
        session_object(order, payment_intent=f"pi_test_{uuid.uuid4().hex[:24]}"),
    )
    event_id = json.loads(payload)["id"]
    # The healthcheck's own commits (if any) are done: arm for the webhook's commit.
    web.armed.touch()

    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        web.post(payload)  # the worker died: no answer at all

    assert not web.armed.exists(), "the worker did not die at a commit"
    event = StripeEvent.objects.get(pk=event_id)
    assert (event.status, event.delivery_count, len(jobs_for(event_id))) == ("received", 1, 1)

    # Stripe redelivers; gunicorn's master has started a new worker.
    wait_until(web.healthy, timeout=30, what="the respawned worker")
    assert web.post(payload) == (200, {"received": True, "duplicate": True})

    run_jobs()

    event = StripeEvent.objects.get(pk=event_id)
    assert StripeEvent.objects.filter(pk=event_id).count() == 1
    assert (event.status, event.delivery_count, event.attempts) == ("processed", 2, 1)
    assert len(jobs_for(event_id)) == 1
    order = Order.objects.get(pk=order.pk)
    transitions = order.events.filter(kind=OrderEvent.Kind.TRANSITION)
    assert list(transitions.values_list("from_status", "to_status", "stripe_event_id")) == [
        ("pending", "paid", event_id)
    ]
    assert (order.status, order.amount_paid, order.payments.count()) == ("paid", order.total, 1)
