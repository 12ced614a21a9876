"""Disputes over real HTTP: checkout, pay on the sandbox, the sandbox's dispute routes
(the bank's side), signed webhooks to the live server, a real worker; the order, its
attention reasons and the order API follow the dispute to its end."""

from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client

from djangomart.orders.models import Order, OrderEvent
from djangomart.payments.models import Dispute, StripeEvent
from tests.payments.conftest import WEBHOOK_SECRET, run_jobs
from tests.payments.test_end_to_end import GOOD_CARD, checkout, order_of, pay, settle
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop(sandbox: SandboxServer, live_server: Any) -> SandboxServer:
    from djangomart.catalog.demo import demo_catalog_seed

    demo_catalog_seed()
    sandbox.add_endpoint(f"{live_server.url}/webhooks/stripe", WEBHOOK_SECRET)
    return sandbox


def paid(shop: SandboxServer, client: Client) -> tuple[dict[str, Any], str]:
    """A paid order (its checkout answer) and its charge at the sandbox."""
    body = checkout(client)
    assert pay(shop, body, card=GOOD_CARD) == "succeeded"
    settle(shop)
    order = order_of(body)
    assert order.status == "paid"
    intent = shop.client().v1.payment_intents.retrieve(str(order.stripe_payment_intent_id))
    return body, str(intent.latest_charge)


def order_api(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.get(
        f"/api/v1/orders/{body['order']['id']}", headers={"X-Order-Token": body["access_token"]}
    )
    assert response.status_code == 200, response.content
    return response.json()  # type: ignore[no-any-return]


def attention(order: Order) -> tuple[bool, list[str]]:
    order.refresh_from_db()
    return order.needs_attention, order.attention_reasons


def due(dispute: dict[str, Any]) -> str:
    """The order API's evidence_due_by for the sandbox's dispute."""
    moment = datetime.fromtimestamp(dispute["evidence_details"]["due_by"], UTC)
    return moment.isoformat().replace("+00:00", "Z")


def test_a_dispute_opened_answered_and_won_ends_with_the_order_undisputed_and_unflagged(
    shop: SandboxServer, client: Client
) -> None:
    body, charge_id = paid(shop, client)
    opened = shop.control(f"charges/{charge_id}/dispute", {"reason": "product_not_received"})
    settle(shop)

    order = order_of(body)
    assert (order.disputed, order.dispute_lost) == (True, False)
    assert attention(order) == (True, ["dispute_open"])
    shown = order_api(client, body)
    assert (shown["disputed"], shown["needs_attention"], shown["payment_status"]) == (
        True,
        True,
        "paid",
    )
    assert shown["disputes"] == [
        {
            "id": opened["id"],
            "status": "needs_response",
            "amount": 4000,
            "currency": "usd",
            "reason": "product_not_received",
            "evidence_due_by": due(opened),
        }
    ]
    assert Dispute.objects.get(stripe_dispute_id=opened["id"]).funds_withdrawn is True

    evidence = {"shipping_tracking_number": "1Z999AA10123456784"}
    shop.control(f"disputes/{opened['id']}/update", {"evidence": evidence})
    settle(shop)
    assert order_api(client, body)["disputes"][0]["status"] == "under_review"
    assert attention(order) == (True, ["dispute_open"])

    shop.control(f"disputes/{opened['id']}/close", {"outcome": "won"})
    settle(shop)

    order = order_of(body)
    assert (order.disputed, order.dispute_lost, order.amount_lost_to_disputes) == (False, False, 0)
    assert attention(order) == (False, [])
    dispute = Dispute.objects.get(stripe_dispute_id=opened["id"])
    assert (dispute.status, dispute.funds_withdrawn, dispute.funds_reinstated) == (
        "won",
        True,
        True,
    )
    shown = order_api(client, body)
    assert (shown["disputed"], shown["needs_attention"]) == (False, False)
    assert shown["disputes"][0]["status"] == "won"
    kinds = list(order.events.filter(kind=OrderEvent.Kind.DISPUTE).values_list("data__status"))
    assert kinds == [
        ("needs_response",),
        ("needs_response",),
        ("under_review",),
        ("won",),
        ("won",),
    ]
    assert order.events.filter(kind=OrderEvent.Kind.DISPUTE, stripe_event_id="").count() == 0


def test_a_lost_dispute_shows_the_money_lost_not_refunded_and_keeps_the_order_flagged(
    shop: SandboxServer, client: Client
) -> None:
    body, charge_id = paid(shop, client)
    opened = shop.control(f"charges/{charge_id}/dispute", {"amount": 1500})
    settle(shop)
    shop.control(f"disputes/{opened['id']}/close", {"outcome": "lost"})
    settle(shop)

    order = order_of(body)
    assert (order.disputed, order.dispute_lost, order.amount_lost_to_disputes) == (
        False,
        True,
        1500,
    )
    assert attention(order) == (True, ["dispute_lost"])
    shown = order_api(client, body)
    assert {k: shown[k] for k in ("payment_status", "amount_paid", "amount_refunded")} == {
        "payment_status": "paid",
        "amount_paid": 4000,
        "amount_refunded": 0,
    }
    assert (shown["dispute_lost"], shown["amount_lost_to_disputes"]) == (True, 1500)
    assert [(d["id"], d["status"], d["amount"]) for d in shown["disputes"]] == [
        (opened["id"], "lost", 1500)
    ]


def test_an_inquiry_is_open_and_refundable_until_it_closes_as_warning_closed(
    shop: SandboxServer, client: Client
) -> None:
    body, charge_id = paid(shop, client)
    opened = shop.control(f"charges/{charge_id}/dispute", {"inquiry": True, "reason": "general"})
    settle(shop)
    dispute = Dispute.objects.get(stripe_dispute_id=opened["id"])
    assert (dispute.status, dispute.is_charge_refundable, dispute.funds_withdrawn) == (
        "warning_needs_response",
        True,
        False,
    )
    assert attention(order_of(body)) == (True, ["dispute_open"])
    assert order_api(client, body)["disputed"] is True

    shop.control(f"disputes/{opened['id']}/close", {"outcome": "warning_closed"})
    settle(shop)

    assert attention(order_of(body)) == (False, [])
    shown = order_api(client, body)
    assert (shown["disputed"], shown["disputes"][0]["status"]) == (False, "warning_closed")


def test_dispute_events_delivered_before_the_payment_wait_and_are_applied_once_it_arrives(
    sandbox: SandboxServer, live_server: Any, client: Client
) -> None:
    """The shop hears of the dispute before any event naming the PaymentIntent as the
    order's (the endpoint registered late, the sandbox resends in the order chosen here)."""
    from djangomart.catalog.demo import demo_catalog_seed

    demo_catalog_seed()
    body = checkout(client)
    pay(sandbox, body, card=GOOD_CARD)
    stripe = sandbox.client()
    session = stripe.v1.checkout.sessions.retrieve(body["checkout_session_id"])
    charge_id = stripe.v1.payment_intents.retrieve(str(session.payment_intent)).latest_charge
    opened = sandbox.control(f"charges/{charge_id}/dispute", {})
    sandbox.add_endpoint(f"{live_server.url}/webhooks/stripe", WEBHOOK_SECRET)

    def resend(*types: str) -> None:
        for event_type in types:
            for event in stripe.v1.events.list(params={"type": event_type}).data:
                sandbox.control(f"events/{event.id}/resend", {})
        sandbox.wait_idle()
        run_jobs()

    resend("charge.dispute.created", "charge.dispute.funds_withdrawn")
    early = StripeEvent.objects.filter(type__startswith="charge.dispute.")
    assert sorted(early.values_list("status", flat=True)) == ["unmatched", "unmatched"]
    assert not Dispute.objects.exists()
    assert order_of(body).disputed is False

    resend("checkout.session.completed")

    settle(sandbox)
    order = order_of(body)
    assert (order.status, order.disputed) == ("paid", True)
    assert attention(order) == (True, ["dispute_open"])
    dispute = Dispute.objects.get(stripe_dispute_id=opened["id"])
    assert (dispute.order_id, dispute.funds_withdrawn) == (order.pk, True)
    assert [d["id"] for d in order_api(client, body)["disputes"]] == [opened["id"]]
