"""Refunds made at the sandbox as in the Dashboard (the SDK with the account's key, none
of our metadata), over real HTTP: webhooks delivered to the shop on a live server and a
real worker run; and the refund list read by the refunds_sync job when only
charge.refunded arrives."""

import json
import threading
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client

from djangomart.orders.models import Order, OrderEvent
from djangomart.payments import refunds
from djangomart.payments.models import StripeEvent
from tests.payments.conftest import WEBHOOK_SECRET, post_event, run_jobs
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = pytest.mark.django_db(transaction=True)

GOOD_CARD = "4242424242424242"


@pytest.fixture
def shop(sandbox: SandboxServer, live_server: Any) -> SandboxServer:
    from djangomart.catalog.demo import demo_catalog_seed

    demo_catalog_seed()
    sandbox.add_endpoint(f"{live_server.url}/webhooks/stripe", WEBHOOK_SECRET)
    return sandbox


def settle(sandbox: SandboxServer) -> None:
    """Every webhook delivered and every event (and job) processed, none left failing."""
    sandbox.wait_idle()
    run_jobs()
    unsettled = StripeEvent.objects.exclude(status__in=["processed", "ignored"])
    assert list(unsettled.values_list("type", "status", "last_error")) == []


def paid(client: Client, sandbox: SandboxServer) -> tuple[Order, str]:
    response = client.post(
        "/api/v1/checkout",
        {"email": "buyer@example.com", "lines": [{"sku": "CLASSIC-TEE-M", "quantity": 2}]},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    result = sandbox.control(
        f"checkout/sessions/{body['checkout_session_id']}/pay", {"card": GOOD_CARD}
    )
    return Order.objects.get(pk=body["order"]["id"]), str(result["payment_intent"]["id"])


def dashboard_refund(sandbox: SandboxServer, intent_id: str, amount: int | None = None) -> str:
    refunds = sandbox.client().v1.refunds
    if amount is None:  # the Dashboard's default: what is left
        return str(refunds.create({"payment_intent": intent_id}).id)
    return str(refunds.create({"payment_intent": intent_id, "amount": amount}).id)


def money(order: Order) -> tuple[str, int, int, str]:
    order.refresh_from_db()
    return (order.status, order.amount_paid, order.amount_refunded, order.payment_status)


def refunds_of(order: Order) -> list[tuple[Any, ...]]:
    return list(
        order.refunds.order_by("stripe_created", "amount").values_list(
            "stripe_refund_id", "amount", "status", "failure_reason", "origin"
        )
    )


def test_a_dashboard_refund_at_the_sandbox_reaches_the_order(
    shop: SandboxServer, client: Client
) -> None:
    order, intent_id = paid(client, shop)
    settle(shop)

    first = dashboard_refund(shop, intent_id, 1500)
    settle(shop)
    assert money(order) == ("paid", 4000, 1500, "partially_refunded")

    rest = dashboard_refund(shop, intent_id)
    settle(shop)
    assert money(order) == ("paid", 4000, 4000, "refunded")
    assert sorted(refunds_of(order)) == sorted([
        (first, 1500, "succeeded", "", "stripe"), (rest, 2500, "succeeded", "", "stripe"),
    ])  # fmt: skip
    shown = client.get(f"/api/v1/orders/{order.pk}", HTTP_X_ORDER_TOKEN=order.access_token)
    assert (shown.json()["amount_refunded"], shown.json()["payment_status"]) == (4000, "refunded")
    entries = order.events.filter(kind=OrderEvent.Kind.REFUND)
    assert sorted(e.data["stripe_refund_id"] for e in entries) == sorted([first, rest])
    assert all(e.stripe_event_id.startswith("evt_") for e in entries)


def test_a_pending_refund_that_succeeds_at_the_sandbox(shop: SandboxServer, client: Client) -> None:
    order, intent_id = paid(client, shop)
    settle(shop)
    shop.configure(refund_mode="pending")

    refund_id = dashboard_refund(shop, intent_id, 1000)
    settle(shop)
    assert money(order) == ("paid", 4000, 0, "paid")
    assert refunds_of(order) == [(refund_id, 1000, "pending", "", "stripe")]

    shop.control(f"refunds/{refund_id}/succeed", {})
    settle(shop)
    assert money(order) == ("paid", 4000, 1000, "partially_refunded")
    assert refunds_of(order) == [(refund_id, 1000, "succeeded", "", "stripe")]


def test_a_pending_refund_that_fails_at_the_sandbox(shop: SandboxServer, client: Client) -> None:
    order, intent_id = paid(client, shop)
    settle(shop)
    shop.configure(refund_mode="pending")

    refund_id = dashboard_refund(shop, intent_id)
    settle(shop)
    shop.control(f"refunds/{refund_id}/fail", {})
    settle(shop)

    assert money(order) == ("paid", 4000, 0, "paid")
    assert refunds_of(order) == [(refund_id, 4000, "failed", "expired_or_canceled_card", "stripe")]
    statuses = [
        (e.data["from_status"], e.data["status"])
        for e in order.events.filter(kind=OrderEvent.Kind.REFUND).order_by("pk")
    ]
    assert statuses == [("", "pending"), ("pending", "failed")]


def test_a_succeeded_refund_that_fails_later_at_the_sandbox(
    shop: SandboxServer, client: Client
) -> None:
    order, intent_id = paid(client, shop)
    settle(shop)
    refund_id = dashboard_refund(shop, intent_id, 2500)
    settle(shop)
    assert money(order)[2:] == (2500, "partially_refunded")

    shop.control(f"refunds/{refund_id}/fail", {})
    settle(shop)
    assert money(order) == ("paid", 4000, 0, "paid")
    assert refunds_of(order) == [(refund_id, 2500, "failed", "expired_or_canceled_card", "stripe")]


def lost_refund_events_but_charge_refunded(sandbox: SandboxServer) -> str:
    """The newest charge.refunded the sandbox made, as API versions since 2022-11-15
    render it (no refund list); the refund.* events are never delivered."""
    page = sandbox.client().v1.events.list(params={"type": "charge.refunded", "limit": 1})
    event = page.data[0].to_dict()
    charge = event["data"]["object"]
    charge.pop("refunds")
    return json.dumps(event)


def test_charge_refunded_alone_makes_the_sync_job_read_the_refunds_from_the_sandbox(
    shop: SandboxServer, client: Client
) -> None:
    order, intent_id = paid(client, shop)
    settle(shop)
    shop.configure(paused=True)  # the endpoint is down: every refund event is lost
    first = dashboard_refund(shop, intent_id, 1000)
    second = dashboard_refund(shop, intent_id, 500)

    response = post_event(client, lost_refund_events_but_charge_refunded(shop))
    assert response.status_code == 200, response.content
    run_jobs()  # the event, then the refunds_sync job it queued

    assert money(order) == ("paid", 4000, 1500, "partially_refunded")
    assert sorted(refunds_of(order)) == sorted([
        (first, 1000, "succeeded", "", "stripe"), (second, 500, "succeeded", "", "stripe"),
    ])  # fmt: skip
    assert not StripeEvent.objects.filter(type__startswith="refund.").exists()
    listed = shop.requests(method="GET", path="/v1/refunds")
    assert [r["params"]["payment_intent"] for r in listed] == [intent_id]
    # Nothing to learn from a second delivery under another id: no second read.
    event = json.loads(lost_refund_events_but_charge_refunded(shop))
    response = post_event(client, json.dumps({**event, "id": event["id"] + "_copy"}))
    run_jobs()
    assert len(shop.requests(method="GET", path="/v1/refunds")) == 1


def test_the_sync_job_holds_no_lock_while_it_reads_stripe(
    sandbox: SandboxServer, client: Client
) -> None:
    """While the refund list is being read (the sandbox holds the request), another
    transaction can lock the order at once (NOWAIT): the job locks only after."""
    from djangomart.catalog.demo import demo_catalog_seed

    demo_catalog_seed()
    order, intent_id = paid(client, sandbox)
    run_jobs()  # no endpoint: nothing was delivered; the order is pending
    from djangomart.payments.checkout import order_sync

    order_sync(order_id=order.pk)  # the landing page's sync makes it paid
    refund_id = dashboard_refund(sandbox, intent_id, 700)
    sandbox.configure(api_latency_min=1.0, api_latency_max=1.0)
    errors: list[Exception] = []

    def job() -> None:
        try:
            refunds.refunds_sync(order_id=order.pk, payment_intent_id=intent_id)
        except Exception as exc:  # noqa: BLE001 (reported to the test thread)
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=job)
    thread.start()
    try:
        sandbox.wait_executing(method="GET", path="/v1/refunds")
        with transaction.atomic():
            locked = Order.objects.select_for_update(nowait=True).get(pk=order.pk)
            assert locked.amount_refunded == 0
    finally:
        thread.join(30)
    assert errors == []
    assert money(order) == ("paid", 4000, 700, "partially_refunded")
    assert refunds_of(order) == [(refund_id, 700, "succeeded", "", "stripe")]
