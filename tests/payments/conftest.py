"""Fixtures for the payment engine: the Stripe sandbox over real HTTP (directly or through
a proxy that can misbehave), the shop on a live server for webhooks, signed hand-built
events, and a worker run."""

import gc
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import stripe
from django.db import connection
from django.test import Client
from procrastinate.contrib.django import app as procrastinate_app
from procrastinate.periodic import PeriodicRegistry

from djangomart.catalog.demo import demo_catalog_seed
from djangomart.orders.models import Order
from djangomart.payments import gateway
from djangomart.payments.inbox import stripe_events_due
from djangomart.payments.inbox_worker import stripe_events_work
from tests.payments.stripe_proxy import Rule, StripeProxy
from tests.stripe_sandbox.harness import API_KEY, SandboxServer

WEBHOOK_SECRET = "whsec_test_engine_secret"  # obviously fake
OTHER_SECRET = "whsec_test_engine_rotated"


@pytest.fixture
def stripe_settings(settings: Any) -> Iterator[Any]:
    settings.STRIPE_SECRET_KEY = API_KEY
    settings.STRIPE_WEBHOOK_SECRETS = [WEBHOOK_SECRET]
    gateway.client_reset()
    yield settings
    gateway.client_reset()


@pytest.fixture
def sandbox(stripe_settings: Any) -> Iterator[SandboxServer]:
    """The offline Stripe, with the shop's gateway pointed at it."""
    server = SandboxServer()
    stripe_settings.STRIPE_API_BASE = server.url
    gateway.client_reset()
    yield server
    server.stop()


@pytest.fixture
def stripe_proxy(
    sandbox: SandboxServer, stripe_settings: Any
) -> Iterator[Callable[[Rule | None], StripeProxy]]:
    """Starts a StripeProxy in front of the sandbox with the given rule and points the
    gateway at it."""
    proxies: list[StripeProxy] = []

    def start(rule: Rule | None = None) -> StripeProxy:
        proxy = StripeProxy(sandbox.url, rule)
        proxies.append(proxy)
        stripe_settings.STRIPE_API_BASE = proxy.url
        gateway.client_reset()
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()


def run_jobs() -> None:
    """Works off everything queued, as the workers of `make run` do: the Stripe events due
    in the inbox (payments.inbox_worker, as `manage.py stripe_events_worker`) and a real
    procrastinate worker's jobs, as `manage.py procrastinate worker` runs them, until
    neither has anything left (a failed event waits for its retry time). Work must be
    committed (transactional tests)."""
    for _ in range(10):
        stripe_events_work()
        jobs_run()
        if not stripe_events_due():
            return
    raise AssertionError("events and jobs kept queueing each other")


def jobs_run() -> None:
    """A real procrastinate worker, until no job is left.

    Without its periodic deferrer: a cron tick would otherwise be deferred (once per test
    session, procrastinate's tables outlive each test) in whichever test's worker starts
    first, and run a reconciliation there. A test of a periodic job defers it itself."""
    worker_connector = procrastinate_app.connector.get_worker_connector()  # type: ignore[attr-defined]
    registry = procrastinate_app.periodic_registry
    procrastinate_app.periodic_registry = PeriodicRegistry()  # type: ignore[no-untyped-call]
    try:
        with procrastinate_app.replace_connector(worker_connector) as worker_app:
            worker_app.run_worker(wait=False, install_signal_handlers=False, listen_notify=False)
    finally:
        procrastinate_app.periodic_registry = registry
    # The worker's task threads are gone but their Django connections (persistent,
    # CONN_MAX_AGE) are only closed when collected; the test database cannot be
    # dropped while they are open.
    gc.collect()


@pytest.fixture
def queued_jobs_removed(request: pytest.FixtureRequest, django_db_blocker: Any) -> Iterator[None]:
    """Procrastinate's tables are not Django's (unmanaged), so the flush after a
    transactional test leaves its jobs behind; this removes the ones the test queued, so
    that a later test counting queued jobs (by task name) starts from none."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None or not marker.kwargs.get("transaction"):
        yield
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM procrastinate_jobs")
        before = cursor.fetchone()[0]
    yield
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_jobs WHERE id > %s", [before])


@pytest.fixture
def catalog(db: None) -> None:
    demo_catalog_seed()


def sign(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp)
    return str(header)


def event_json(event_type: str, obj: dict[str, Any], *, event_id: str | None = None,
               created: int | None = None) -> str:  # fmt: skip
    """A hand-built event in Stripe's shape (see tests/fixtures/stripe/fixtures3.json)."""
    return json.dumps({
        "id": event_id or f"evt_test_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": created or int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    })  # fmt: skip


def post_event(
    client: Client, payload: str, *, secret: str = WEBHOOK_SECRET, **headers: Any
) -> Any:
    return client.post("/webhooks/stripe", data=payload, content_type="application/json",
                       HTTP_STRIPE_SIGNATURE=sign(payload, secret), **headers)  # fmt: skip


def session_object(order: Order, **overrides: Any) -> dict[str, Any]:
    """A checkout.session as Stripe embeds it in events, for `order`."""
    obj: dict[str, Any] = {
        "id": order.stripe_checkout_session_id or f"cs_test_{uuid.uuid4().hex}",
        "object": "checkout.session",
        "amount_subtotal": order.total,
        "amount_total": order.total,
        "currency": order.currency,
        "client_reference_id": str(order.id),
        "metadata": {"order_id": str(order.id)},
        "mode": "payment",
        "payment_intent": order.stripe_payment_intent_id or f"pi_test_{uuid.uuid4().hex[:24]}",
        "payment_status": "paid",
        "status": "complete",
    }
    obj.update(overrides)
    return obj


def intent_object(order: Order, intent_id: str, **overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": intent_id,
        "object": "payment_intent",
        "amount": order.total,
        "amount_received": order.total,
        "currency": order.currency,
        "metadata": {"order_id": str(order.id)},
        "status": "succeeded",
        "last_payment_error": None,
    }
    obj.update(overrides)
    return obj


EventPoster = Callable[..., Any]
