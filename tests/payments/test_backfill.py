"""The event backfill (`manage.py reconcile`, payments.backfill): events the inbox missed
are read from the sandbox's GET /v1/events over real HTTP and stored through the normal
inbox path, once, oldest first; the cursor moves only on success; runs are serialized.
Webhooks reach the shop on a live server; `paused` is the outage."""

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from urllib.request import Request, urlopen

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone
from procrastinate.contrib.django import app as procrastinate_app

from djangomart.catalog.demo import demo_catalog_seed
from djangomart.orders.models import Order, OrderEvent
from djangomart.payments import backfill, gateway, handlers, inbox
from djangomart.payments.models import ReconciliationRun, StripeEvent
from djangomart.payments.reconcile import GRACE
from djangomart.payments.tasks import reconcile_task
from tests.payments.builders import order_build
from tests.payments.conftest import WEBHOOK_SECRET, event_json, post_event, run_jobs
from tests.payments.race_helpers import is_due, lock_waiters_wait, order_state
from tests.payments.stripe_proxy import Handler, StripeProxy
from tests.stripe_sandbox.harness import API_KEY, SandboxServer

pytestmark = pytest.mark.django_db(transaction=True)

GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"
SKU = "CLASSIC-TEE-M"  # 20.00 USD
PRICE = 2000
OVERLAP = timedelta(seconds=300)  # RECONCILE_EVENTS_OVERLAP_SECONDS' default


@pytest.fixture
def shop(sandbox: SandboxServer, live_server: Any) -> SandboxServer:
    """The sandbox delivering webhooks to the shop on a live server."""
    demo_catalog_seed()
    sandbox.add_endpoint(f"{live_server.url}/webhooks/stripe", WEBHOOK_SECRET)
    return sandbox


def checkout(client: Client) -> dict[str, Any]:
    response = client.post(
        "/api/v1/checkout",
        {"email": "buyer@example.com", "lines": [{"sku": SKU, "quantity": 1}]},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    return response.json()  # type: ignore[no-any-return]


def pay(sandbox: SandboxServer, body: dict[str, Any], card: str = GOOD_CARD) -> dict[str, Any]:
    path = f"checkout/sessions/{body['checkout_session_id']}/pay"
    return sandbox.control(path, {"card": card})  # type: ignore[no-any-return]


def order_of(body: dict[str, Any]) -> Order:
    return Order.objects.get(pk=body["order"]["id"])


def reconcile(*args: str) -> str:
    out = StringIO()
    call_command("reconcile", *args, stdout=out, stderr=StringIO())
    return out.getvalue().strip()


def last_run() -> ReconciliationRun:
    run = ReconciliationRun.objects.order_by("-pk").first()
    assert run is not None
    return run


def handled_events(sandbox: SandboxServer) -> list[Any]:
    """The sandbox's events of the handled types, newest first (all pages)."""
    params: Any = {"types": backfill.handled_types(), "limit": 100}
    return list(sandbox.client().v1.events.list(params).auto_paging_iter())


def created(event: Any) -> datetime:
    return datetime.fromtimestamp(event.created, UTC)


def queued_event_ids(event_ids: list[str]) -> list[str]:
    """Which of `event_ids` are due, in the order workers take them."""
    due = inbox.events_due().values_list("pk", flat=True)
    return [event_id for event_id in due if event_id in set(event_ids)]


def events_requests(sandbox: SandboxServer) -> list[dict[str, Any]]:
    """The parameters of every GET /v1/events the backfill sent, oldest first (the
    test's own listings have no `created`)."""
    requests = sandbox.requests(method="GET", path="/v1/events")
    return [r["params"] for r in requests if "created" in r["params"]]


def near(when: datetime | None, expected: datetime, seconds: float = 10) -> bool:
    return when is not None and abs((when - expected).total_seconds()) < seconds


# -- what a run adds --------------------------------------------------------------------


def test_missing_events_are_added_once_oldest_first_and_processed_like_delivered_ones(
    shop: SandboxServer, client: Client
) -> None:
    delivered = checkout(client)
    pay(shop, delivered)
    shop.wait_idle()
    run_jobs()
    shop.configure(paused=True)  # the outage
    missed = checkout(client)
    pay(shop, missed)
    listed = [e.id for e in handled_events(shop)]  # newest first
    missed_ids = [i for i in listed if not StripeEvent.objects.filter(pk=i).exists()]
    assert (len(listed), len(missed_ids)) == (4, 2)
    assert order_of(missed).status == "pending"

    assert reconcile() == "reconcile: 4 events seen, 2 added, 0 orders synced, 0 errors"
    rows = StripeEvent.objects.filter(pk__in=missed_ids)
    assert {(r.source, r.delivery_count, r.status) for r in rows} == {("backfill", 0, "received")}
    # Stored oldest first: due in the order Stripe created the events.
    assert queued_event_ids(missed_ids) == list(reversed(missed_ids))
    run = last_run()
    assert (run.trigger, run.status, run.events_added) == ("command", "succeeded", 2)

    run_jobs()
    order, reference = order_of(missed), order_of(delivered)
    assert (order.status, order.payment_status, order.amount_paid) == ("paid", "paid", PRICE)
    assert set(rows.values_list("status", flat=True)) == {"processed"}

    def timeline(o: Order) -> list[str]:
        return list(o.events.order_by("created_at", "pk").values_list("kind", flat=True))

    assert timeline(order) == timeline(reference)  # as if the webhooks had come
    causes = set(order.events.exclude(stripe_event_id="").values_list("stripe_event_id", flat=True))
    assert causes
    assert causes <= set(missed_ids)

    # A second run re-reads (the overlap) but adds nothing.
    assert reconcile() == "reconcile: 4 events seen, 0 added, 0 orders synced, 0 errors"
    assert StripeEvent.objects.filter(source="backfill").count() == 2
    processed_at = dict(rows.values_list("pk", "processed_at"))
    # (payment_intent.succeeded came first and waited for its session: requeued once.)
    attempts = dict(rows.values_list("pk", "attempts"))

    # Stripe delivers them after all: one more delivery on the same row, nothing else.
    shop.configure(paused=False)
    shop.wait_idle()
    run_jobs()
    for row in StripeEvent.objects.filter(pk__in=missed_ids):
        assert (row.source, row.delivery_count, row.status) == ("backfill", 1, "processed")
        assert row.processed_at == processed_at[row.pk]
        assert row.attempts == attempts[row.pk]  # a delivery of a known event: not due again
    assert timeline(order_of(missed)) == timeline(reference)


def test_a_listing_of_several_pages_is_stored_whole_oldest_first(
    shop: SandboxServer, client: Client
) -> None:
    shop.configure(paused=True)
    body = checkout(client)
    for _ in range(101):  # one page is 100 events
        assert pay(shop, body, DECLINED_CARD)["outcome"] == "declined"
    pay(shop, body)
    listed = [e.id for e in handled_events(shop)]
    assert len(listed) == 103

    assert reconcile() == "reconcile: 103 events seen, 103 added, 0 orders synced, 0 errors"
    pages = events_requests(shop)
    assert [p.get("starting_after") for p in pages] == [None, listed[99]]
    assert queued_event_ids(listed) == list(reversed(listed))
    run_jobs()
    order = order_of(body)
    assert (order.status, order.amount_paid) == ("paid", PRICE)
    attempts = order.events.filter(kind=OrderEvent.Kind.PAYMENT_ATTEMPT_FAILED)
    assert attempts.count() == 101


# -- the cursor -------------------------------------------------------------------------


def test_the_cursor_moves_forward_and_the_overlap_rereads_recent_events_without_duplicating(
    shop: SandboxServer, client: Client
) -> None:
    shop.configure(paused=True)
    first = checkout(client)
    pay(shop, first)
    assert reconcile() == "reconcile: 2 events seen, 2 added, 0 orders synced, 0 errors"
    run1 = last_run()
    newest = handled_events(shop)[0]
    assert near(run1.events_from, timezone.now() - timedelta(days=30))  # no cursor yet
    assert run1.cursor == created(newest)

    shop.control("clock/advance", {"seconds": 1000})
    second = checkout(client)
    pay(shop, second)
    # From the cursor minus the overlap: the first order's events are read again, as seen.
    assert reconcile() == "reconcile: 4 events seen, 2 added, 0 orders synced, 0 errors"
    run2 = last_run()
    assert run2.events_from == run1.cursor - OVERLAP
    assert run2.cursor == created(handled_events(shop)[0])
    assert run2.cursor is not None
    assert run2.cursor >= run1.cursor + timedelta(seconds=1000)

    # The first order's events are now older than the overlap: not read again.
    assert reconcile() == "reconcile: 2 events seen, 0 added, 0 orders synced, 0 errors"
    run3 = last_run()
    assert (run3.events_from, run3.cursor) == (run2.cursor - OVERLAP, run2.cursor)
    gte = [int(p["created"]["gte"]) for p in events_requests(shop)]
    assert gte == [int(r.events_from.timestamp()) for r in (run1, run2, run3)]  # type: ignore[union-attr]
    assert StripeEvent.objects.count() == 4
    run_jobs()
    assert {order_of(first).status, order_of(second).status} == {"paid"}


def test_a_cursor_older_than_30_days_reads_30_days_and_says_what_may_be_lost(
    sandbox: SandboxServer,
) -> None:
    long_ago = timezone.now() - timedelta(days=45)
    ReconciliationRun.objects.create(
        trigger="command", status="succeeded", finished_at=long_ago, cursor=long_ago
    )
    assert reconcile() == "reconcile: 0 events seen, 0 added, 0 orders synced, 1 error"
    run = last_run()
    assert run.status == "succeeded"
    assert near(run.events_from, timezone.now() - timedelta(days=30))
    assert "more than 30 days ago" in run.errors[0]["error"]
    assert [int(p["created"]["gte"]) for p in events_requests(sandbox)] == [
        int(run.events_from.timestamp())  # type: ignore[union-attr]
    ]
    assert run.cursor == long_ago  # nothing newer read: the cursor stays, no gap is invented


def test_since_overrides_the_cursor_within_30_days_and_never_skips_events(
    shop: SandboxServer, client: Client
) -> None:
    shop.configure(paused=True)
    body = checkout(client)
    pay(shop, body)
    newest = created(handled_events(shop)[0])

    # No cursor yet: a run from 1 minute ago did not cover the 30 days a run must read.
    assert reconcile("--since", "1m").startswith("reconcile: 2 events seen, 2 added")
    run = last_run()
    assert near(run.events_from, timezone.now() - timedelta(minutes=1))
    assert run.cursor is None
    reconcile()
    assert last_run().cursor == newest

    # From further back than the cursor: covers it, the cursor holds.
    ten_days_ago = (timezone.now() - timedelta(days=10)).replace(microsecond=0)
    assert reconcile("--since", ten_days_ago.isoformat()).startswith("reconcile: 2 events seen, 0")
    assert (last_run().events_from, last_run().cursor) == (ten_days_ago, newest)

    # The whole retention, e.g. once after a release that handles new event types.
    assert reconcile("--since", "30d").startswith("reconcile: 2 events seen, 0 added")
    assert near(last_run().events_from, timezone.now() - timedelta(days=30))
    assert (last_run().status, last_run().cursor) == ("succeeded", newest)

    runs = ReconciliationRun.objects.count()
    for refused in ("31d", "tomorrow", (timezone.now() + timedelta(hours=1)).isoformat()):
        with pytest.raises(CommandError):
            reconcile("--since", refused)
    assert ReconciliationRun.objects.count() == runs


# -- Stripe unreachable -----------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends


def test_stripe_unreachable_fails_the_command_and_the_run_and_keeps_the_cursor(
    shop: SandboxServer, client: Client
) -> None:
    shop.configure(paused=True)
    pay(shop, checkout(client))
    reconcile()
    cursor = last_run().cursor
    assert cursor is not None
    later = checkout(client)
    pay(shop, later)

    # The real command in its own process, against this test's database.
    parts = urlsplit(os.environ["DATABASE_URL"])
    env = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": urlunsplit(parts._replace(path=f"/{connection.settings_dict['NAME']}")),
        "STRIPE_SECRET_KEY": API_KEY,
        "STRIPE_API_BASE": f"http://127.0.0.1:{closed_port()}",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "reconcile"],
        cwd=Path(settings.BASE_DIR), env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    summary = [line for line in result.stdout.splitlines() if line.startswith("reconcile:")]
    assert summary == ["reconcile: 0 events seen, 0 added, 0 orders synced, 1 error"]
    assert "reconcile: Stripe could not be read" in result.stderr
    assert "the event cursor was not moved" in result.stderr
    failed = last_run()
    assert (failed.status, failed.cursor, failed.events_added) == ("failed", None, 0)
    assert failed.finished_at is not None
    assert "Stripe could not be read" in failed.errors[0]["error"]
    assert backfill.cursor_stored() == cursor

    # Stripe is back: the next run starts where the last good one stopped.
    assert reconcile().startswith("reconcile: 4 events seen, 2 added")
    assert last_run().events_from == cursor - OVERLAP
    run_jobs()
    assert order_of(later).status == "paid"


def test_stripe_answering_500s_fails_the_run_after_the_retries_and_keeps_the_cursor(
    shop: SandboxServer, client: Client, stripe_proxy: Any
) -> None:
    shop.configure(paused=True)
    pay(shop, checkout(client))
    reconcile()
    cursor = last_run().cursor

    def events_fail(proxy: StripeProxy, method: str, path: str, count: int, handler: Handler,
                    body: bytes) -> bool:  # fmt: skip
        if path == "/v1/events":
            handler.answer_500()
            return True
        return False

    proxy = stripe_proxy(events_fail)
    with pytest.raises(CommandError, match="the event cursor was not moved"):
        reconcile()
    failed = last_run()
    assert (failed.status, failed.cursor) == ("failed", None)
    assert "Stripe could not be read" in failed.errors[0]["error"]
    assert proxy.seen[("GET", "/v1/events")] == 1 + gateway.MAX_NETWORK_RETRIES
    assert backfill.cursor_stored() == cursor


def test_more_types_than_stripe_lists_at_once_fail_the_run_before_any_read(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(21 - len(handlers.HANDLERS)):
        monkeypatch.setitem(handlers.HANDLERS, f"test.type_{i}", handlers.on_checkout_session)
    with pytest.raises(CommandError):
        reconcile()
    assert "at most 20 event types" in last_run().errors[0]["error"]
    assert events_requests(sandbox) == []


# -- the inbox path: a delivery racing the backfill -------------------------------------


def in_thread(work: Any) -> tuple[threading.Thread, list[Any]]:
    """Starts `work` in another thread (so on another connection); its result or
    exception lands in the list."""
    results: list[Any] = []

    def run() -> None:
        try:
            results.append(work())
        except BaseException as exc:  # noqa: BLE001 - checked by the caller
            results.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, results


def hold_open(work: Any, release: threading.Event) -> tuple[threading.Thread, list[Any]]:
    """Runs `work` in a transaction of another thread, committed once `release` is set;
    returns when `work` is done (its rows written, not committed)."""
    done = threading.Event()

    def held() -> Any:
        try:
            with transaction.atomic():
                result = work()
                done.set()
                release.wait(30)
            return result
        finally:
            done.set()

    thread, results = in_thread(held)
    assert done.wait(10)
    return thread, results


def test_a_delivery_waiting_on_a_backfilled_row_counts_one_delivery_on_it(
    demo_catalog: None, stripe_settings: Any, client: Client
) -> None:
    payload = event_json("payment_intent.succeeded", {"id": "pi_race", "object": "payment_intent"})
    event = inbox.event_parse(payload.encode())
    release = threading.Event()
    thread, results = hold_open(lambda: inbox.event_store_listed(event), release)
    try:
        poster, answer = in_thread(lambda: post_event(Client(), payload))
        lock_waiters_wait(1)  # the delivery's insert waits on the uncommitted row
    finally:
        release.set()
        thread.join(10)
    poster.join(10)
    assert results == [True]
    assert answer[0].status_code == 200
    assert answer[0].json()["duplicate"] is True
    row = StripeEvent.objects.get(pk=event["id"])
    assert (row.source, row.delivery_count, row.status) == ("backfill", 1, "received")
    assert is_due(row.pk)


def test_a_backfill_waiting_on_a_delivered_row_leaves_it_as_delivered(
    demo_catalog: None, stripe_settings: Any
) -> None:
    payload = event_json("payment_intent.succeeded", {"id": "pi_race", "object": "payment_intent"})
    event = inbox.event_parse(payload.encode())
    release = threading.Event()
    thread, results = hold_open(lambda: inbox.event_store(event, payload.encode()), release)
    try:
        backfiller, stored = in_thread(lambda: inbox.event_store_listed(event))
        lock_waiters_wait(1)  # the backfill's insert waits on the uncommitted delivery
    finally:
        release.set()
        thread.join(10)
    backfiller.join(10)
    assert (results, stored) == ([True], [False])
    row = StripeEvent.objects.get(pk=event["id"])
    assert (row.source, row.delivery_count, row.status) == ("webhook", 1, "received")
    assert is_due(row.pk)


# -- runs at once -----------------------------------------------------------------------


def test_runs_are_serialized_and_a_run_that_waited_starts_from_the_cursor_of_the_one_before(
    shop: SandboxServer, client: Client
) -> None:
    shop.configure(paused=True)
    pay(shop, checkout(client))
    shop.configure(api_latency_min=1.0, api_latency_max=1.0)
    thread, first = in_thread(lambda: backfill.reconcile_run(trigger="command"))
    shop.wait_executing(path="/v1/events")  # the first run holds the lock, reading Stripe
    with pytest.raises(backfill.ReconcileBusy):
        backfill.reconcile_run(trigger="periodic")
    with pytest.raises(CommandError) as busy:
        reconcile("--wait", "0")
    assert busy.value.returncode == 2
    assert ReconciliationRun.objects.count() == 1  # a refused run records nothing

    waited = reconcile("--wait", "30")  # waits for the first run, then runs
    thread.join(10)
    assert isinstance(first[0], ReconciliationRun)
    assert (first[0].status, first[0].events_added) == ("succeeded", 2)
    assert waited == "reconcile: 2 events seen, 0 added, 0 orders synced, 0 errors"
    second = last_run()
    assert first[0].finished_at is not None
    assert first[0].cursor is not None
    assert second.started_at >= first[0].finished_at
    assert second.events_from == first[0].cursor - OVERLAP
    assert StripeEvent.objects.count() == 2


def test_a_run_left_running_by_a_dead_process_is_closed_as_failed_by_the_next(
    sandbox: SandboxServer,
) -> None:
    dead = ReconciliationRun.objects.create(trigger="periodic")
    reconcile()
    dead.refresh_from_db()
    assert (dead.status, dead.cursor) == ("failed", None)
    assert "Interrupted" in dead.errors[-1]["error"]
    assert last_run().status == "succeeded"


# -- the periodic job -------------------------------------------------------------------


def test_the_periodic_job_runs_the_backfill_and_the_pending_order_checks(
    sandbox: SandboxServer,
) -> None:
    demo_catalog_seed()
    overdue = order_build(with_session=False)
    Order.objects.filter(pk=overdue.pk).update(
        expires_at=timezone.now() - GRACE - timedelta(minutes=1)
    )
    reconcile_task.defer(timestamp=int(time.time()))  # type: ignore[call-arg]
    run_jobs()
    run = last_run()
    assert (run.trigger, run.status, run.orders_synced) == ("periodic", "succeeded", 1)
    assert len(events_requests(sandbox)) == 1
    overdue.refresh_from_db()
    assert overdue.status == "expired"

    # The pending-order checks run inside it, every five minutes as before, not twice.
    registered = procrastinate_app.periodic_registry.periodic_tasks.values()
    periodic = {task.task.name: task.cron for task in registered}
    assert periodic["reconcile"] == "*/5 * * * *"
    assert "orders_reconcile_stale" not in periodic


# -- the admin --------------------------------------------------------------------------


def test_the_admin_lists_runs_read_only(staff_client: Client, sandbox: SandboxServer) -> None:
    reconcile()
    ReconciliationRun.objects.create(
        trigger="periodic", status="failed", finished_at=timezone.now(),
        errors=[{"stage": "events", "error": "Stripe could not be read: boom"}],
    )  # fmt: skip
    listing = staff_client.get("/admin/payments/reconciliationrun/")
    assert listing.status_code == 200
    assert b"succeeded" in listing.content
    assert b"failed" in listing.content
    failed = last_run()
    page = staff_client.get(f"/admin/payments/reconciliationrun/{failed.pk}/change/")
    assert page.status_code == 200
    assert b"[events] Stripe could not be read: boom" in page.content
    assert b'name="_save"' not in page.content
    assert staff_client.get("/admin/payments/reconciliationrun/add/").status_code == 403


# -- webhooks down while money moves: one run brings every order to Stripe's truth ------

OPEN_DISPUTE = {"warning_needs_response", "warning_under_review", "needs_response", "under_review"}
PLAN = {
    "paid": 17,
    "declined_then_paid": 3,  # a failed attempt first (payment_intent.payment_failed)
    "refund_full": 6,
    "refund_partial": 3,
    "refund_twice": 3,  # two partial refunds, the second after the clock moved
    "dispute_won": 4,
    "dispute_lost": 4,
    "dispute_open": 2,  # opened and updated (evidence submitted), still open
    "expired": 5,  # never paid; the sandbox clock moves past their expiry
    "pending": 2,  # session still open
    "pending_declined": 1,  # session still open after a declined attempt
}


@dataclass
class Scripted:
    kind: str
    body: dict[str, Any]
    dispute: str | None = None
    intent: str | None = None
    charge: str | None = None

    @property
    def order_id(self) -> str:
        return str(self.body["order"]["id"])


def truth_of(sandbox: SandboxServer, scripted: Scripted) -> dict[str, Any]:
    """What the order must show, read from the sandbox's objects (not from the script)."""
    stripe_client = sandbox.client()
    session = stripe_client.v1.checkout.sessions.retrieve(scripted.body["checkout_session_id"])
    paid = refunded = 0
    if session.payment_status == "paid":
        intent = stripe_client.v1.payment_intents.retrieve(str(session.payment_intent))
        charge = stripe_client.v1.charges.retrieve(str(intent.latest_charge))
        paid, refunded = intent.amount_received, charge.amount_refunded
    dispute = stripe_client.v1.disputes.retrieve(scripted.dispute) if scripted.dispute else None
    dispute_open = dispute is not None and dispute.status in OPEN_DISPUTE
    dispute_lost = dispute is not None and dispute.status == "lost"
    status = {"open": "pending", "expired": "expired", "complete": "paid"}[str(session.status)]
    payment_status = "paid" if paid else "unpaid"
    if refunded:
        payment_status = "refunded" if refunded == paid else "partially_refunded"
    return {
        "status": status,
        "amount_paid": paid,
        "payment_status": payment_status,
        "amount_refunded": refunded,
        "disputed": dispute_open,
        "dispute_lost": dispute_lost,
        "amount_lost_to_disputes": dispute.amount if dispute is not None and dispute_lost else 0,
        "attention_dispute_open": dispute_open,
        "attention_dispute_lost": dispute_lost,
    }


def shown(order: Order) -> dict[str, Any]:
    return {
        "status": order.status,
        "amount_paid": order.amount_paid,
        "payment_status": order.payment_status,
        "amount_refunded": order.amount_refunded,
        "disputed": order.disputed,
        "dispute_lost": order.dispute_lost,
        "amount_lost_to_disputes": order.amount_lost_to_disputes,
        "attention_dispute_open": "dispute_open" in order.attention_reasons,
        "attention_dispute_lost": "dispute_lost" in order.attention_reasons,
    }


def mismatches(truth: dict[str, dict[str, Any]], fields: list[str], kinds: set[str],
               plan: list[Scripted]) -> list[tuple[str, str, Any, Any]]:  # fmt: skip
    """(kind, field, expected, shown) for every order of `kinds` that differs."""
    found = []
    for scripted in plan:
        if scripted.kind in kinds:
            now = shown(Order.objects.get(pk=scripted.order_id))
            expected = truth[scripted.order_id]
            found += [(scripted.kind, f, expected[f], now[f])
                      for f in fields if expected[f] != now[f]]  # fmt: skip
    return found


def test_webhooks_down_while_50_orders_move_money_one_reconcile_run_brings_all_to_the_truth(
    shop: SandboxServer, client: Client, settings: Any
) -> None:
    shop.configure(paused=True)  # the outage: Stripe keeps every event, delivers none
    rng = random.Random(8)  # noqa: S311 - a reproducible interleaving, not a secret
    stripe_client = shop.client()
    plan: list[Scripted] = []
    for kind in [kind for kind, count in PLAN.items() for _ in range(count)]:
        # Pending sessions outlive the clock's move (Stripe's maximum, 24 hours).
        settings.CHECKOUT_EXPIRY_MINUTES = 1440 if kind.startswith("pending") else 60
        plan.append(Scripted(kind, checkout(client)))
    assert len(plan) == 50

    for scripted in rng.sample(plan, len(plan)):
        if scripted.kind in ("declined_then_paid", "pending_declined"):
            assert pay(shop, scripted.body, DECLINED_CARD)["outcome"] == "declined"
        if scripted.kind not in ("expired", "pending", "pending_declined"):
            intent = pay(shop, scripted.body)["payment_intent"]
            scripted.intent, scripted.charge = intent["id"], intent["latest_charge"]

    # Money going back, as from the Dashboard (refunds straight at Stripe) and the bank.
    for scripted in rng.sample(plan, len(plan)):
        if scripted.kind == "refund_full":
            stripe_client.v1.refunds.create({"payment_intent": str(scripted.intent)})
        elif scripted.kind == "refund_partial":
            stripe_client.v1.refunds.create({"payment_intent": str(scripted.intent), "amount": 700})
        elif scripted.kind == "refund_twice":
            stripe_client.v1.refunds.create({"charge": str(scripted.charge), "amount": 500})
        elif scripted.kind.startswith("dispute_"):
            opened = shop.control(f"charges/{scripted.charge}/dispute", {"reason": "fraudulent"})
            scripted.dispute = opened["id"]
            if scripted.kind == "dispute_open":
                evidence = {"uncategorized_text": "Signed delivery receipt."}
                shop.control(f"disputes/{opened['id']}/update", {"evidence": evidence})
    shop.control("clock/advance", {"seconds": 2 * 3600})  # the 60-minute sessions expire
    for scripted in rng.sample(plan, len(plan)):
        if scripted.kind == "refund_twice":
            stripe_client.v1.refunds.create({"payment_intent": str(scripted.intent), "amount": 300})
        elif scripted.kind in ("dispute_won", "dispute_lost"):
            outcome = scripted.kind.removeprefix("dispute_")
            shop.control(f"disputes/{scripted.dispute}/close", {"outcome": outcome})
    truth = {scripted.order_id: truth_of(shop, scripted) for scripted in plan}
    assert {t["status"] for t in truth.values()} == {"paid", "expired", "pending"}
    assert StripeEvent.objects.count() == 0  # nothing was delivered

    listed = [event.id for event in handled_events(shop)]
    summary = reconcile()
    count = len(listed)
    assert summary == f"reconcile: {count} events seen, {count} added, 0 orders synced, 0 errors"
    run_jobs()

    # The inbox holds each handled event exactly once, read by the backfill, processed.
    rows = list(StripeEvent.objects.all())
    assert sorted(row.pk for row in rows) == sorted(listed)
    assert {(row.source, row.delivery_count, row.status) for row in rows} == {
        ("backfill", 0, "processed")
    }

    # Payments and expiries (this branch): every order as the sandbox says.
    unrefunded = set(PLAN) - {"refund_full", "refund_partial", "refund_twice"}
    assert mismatches(truth, ["status", "amount_paid"], set(PLAN), plan) == []
    assert mismatches(truth, ["payment_status"], unrefunded, plan) == []
    assert (
        Order.objects.filter(needs_attention=True)
        .exclude(pk__in=[s.order_id for s in plan if s.kind.startswith("dispute_")])
        .count()
        == 0
    )

    # Stripe delivers everything after all: only delivery counts change (and events of
    # types the engine does not handle are stored as ignored, as any delivery is).
    orders_before = {s.order_id: order_state(uuid.UUID(s.order_id)) for s in plan}
    events_before = {
        row.pk: (row.status, row.processed_at, row.attempts, row.order_id, row.source)
        for row in rows
    }
    shop.configure(paused=False)
    shop.wait_idle(timeout=60)
    run_jobs()
    assert {s.order_id: order_state(uuid.UUID(s.order_id)) for s in plan} == orders_before
    for row in StripeEvent.objects.filter(pk__in=events_before):
        assert (row.status, row.processed_at, row.attempts, row.order_id, row.source) == (
            events_before[row.pk]
        )
        assert row.delivery_count == 1
    delivered_only = StripeEvent.objects.exclude(pk__in=events_before)
    handled = set(backfill.handled_types())
    assert all(
        (row.source, row.delivery_count, row.status) == ("webhook", 1, "ignored")
        and row.type not in handled
        for row in delivered_only
    )

    # Refunds (made at Stripe, as in the Dashboard) and disputes, backfilled too.
    refunded = {"refund_full", "refund_partial", "refund_twice"}
    assert mismatches(truth, ["amount_refunded", "payment_status"], refunded, plan) == []
    disputes = ["disputed", "dispute_lost", "amount_lost_to_disputes", "attention_dispute_open",
                "attention_dispute_lost"]  # fmt: skip
    assert mismatches(truth, disputes, set(PLAN), plan) == []


def test_reconcile_queues_again_an_event_an_older_release_stored_ignored(
    shop: SandboxServer, client: Client
) -> None:
    """During a release that starts handling a type, web processes of the old release
    acknowledge that type as `ignored` (their HANDLERS lack it) even after the new
    release's migration ran: the next reconciliation run puts such an event back in the
    inbox, and the workers apply it."""
    shop.configure(paused=True)  # the sandbox delivers nothing: the old web stores it
    body = checkout(client)
    pay(shop, body)
    [completed] = [e for e in handled_events(shop) if e.type == "checkout.session.completed"]
    with urlopen(Request(f"{shop.url}/v1/events/{completed.id}",
                         headers={"Authorization": f"Bearer {API_KEY}"})) as answer:  # fmt: skip
        payload = answer.read().decode()
    assert post_event(client, payload).status_code == 200
    # What the old release's acknowledgement wrote for a type it did not handle.
    StripeEvent.objects.filter(pk=completed.id).update(
        status="ignored", processed_at=timezone.now(), next_attempt_at=timezone.now()
    )
    unrelated = inbox.event_parse(
        event_json("charge.succeeded", {"id": "ch_x", "object": "charge"}).encode()
    )
    inbox.event_store(unrelated, json.dumps(unrelated).encode())

    reconcile()
    run_jobs()

    event = StripeEvent.objects.get(pk=completed.id)
    assert (event.status, event.attempts) == ("processed", 1)
    assert order_of(body).status == "paid"
    # A type no handler reads stays ignored, untouched.
    assert StripeEvent.objects.get(pk=unrelated["id"]).status == "ignored"
