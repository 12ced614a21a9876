"""The order API's money back: refunds and disputes of the order (GET /api/v1/orders/{id}
and POST .../sync), with dispute_lost and amount_lost_to_disputes, in a constant number
of queries, and described as such in the OpenAPI schema."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order
from djangomart.payments import facts
from djangomart.payments.disputes import dispute_fact
from djangomart.payments.models import Payment, Refund
from tests.orders.conftest import checkout_post
from tests.payments.builders import dispute_object, new_dispute_id, new_intent_id
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = pytest.mark.django_db

DUE = 1_800_604_800


@pytest.fixture
def placed(goods: None, sandbox: SandboxServer, client: Client) -> dict[str, Any]:
    response = checkout_post(client)
    assert response.status_code == 201, response.content
    return response.json()  # type: ignore[no-any-return]


def order_get(client: Client, placed: dict[str, Any]) -> Any:
    return client.get(
        f"/api/v1/orders/{placed['order']['id']}", headers={"X-Order-Token": placed["access_token"]}
    )


def payment_of(order: Order) -> Payment:
    """A PaymentIntent the order's own session named (a Payment row of the order)."""
    intent_id = new_intent_id()
    with transaction.atomic():
        facts.payment_intent_adopt(orders_lock([order.pk])[order.pk], intent_id)
    return Payment.objects.get(stripe_payment_intent_id=intent_id)


def dispute_on(order: Order, payment: Payment, status: str, **overrides: Any) -> str:
    dispute_id = new_dispute_id()
    obj = dispute_object(order, payment.stripe_payment_intent_id, dispute_id, status, **overrides)
    with transaction.atomic():
        locked = orders_lock([order.pk])[order.pk]
        dispute_fact(
            locked,
            obj,
            event_type="charge.dispute.created",
            stripe_event_id=f"evt_test_{dispute_id[8:]}",
            event_created=timezone.now(),
        )
    return dispute_id


def refund_on(order: Order, payment: Payment, **fields: Any) -> Refund:
    values: dict[str, Any] = {
        "order": order,
        "payment": payment,
        "stripe_payment_intent_id": payment.stripe_payment_intent_id,
        "amount": 1000,
        "currency": order.currency,
        "status": Refund.Status.SUCCEEDED,
        "origin": Refund.Origin.STAFF,
    }
    values.update(fields)
    return Refund.objects.create(**values)


def ms(moment: datetime) -> datetime:
    """A time as the API writes it: to the millisecond."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def times_parsed(items: list[dict[str, Any]], field: str) -> list[dict[str, Any]]:
    return [{**item, field: item[field] and datetime.fromisoformat(item[field])} for item in items]


def test_the_order_shows_its_refunds_oldest_first_and_its_disputes_with_their_deadline(
    placed: dict[str, Any], client: Client
) -> None:
    order = Order.objects.get(pk=placed["order"]["id"])
    payment = payment_of(order)
    first = refund_on(order, payment, amount=1000, reason="requested_by_customer")
    second = refund_on(order, payment, amount=500, status=Refund.Status.PENDING)
    Refund.objects.filter(pk=second.pk).update(created_at=first.created_at + timedelta(seconds=1))
    second.refresh_from_db()
    lost = dispute_on(order, payment, "lost", amount=1500, reason="product_not_received")

    body = order_get(client, placed).json()

    assert times_parsed(body["refunds"], "created_at") == [
        {
            "id": str(first.id),
            "amount": 1000,
            "currency": "usd",
            "status": "succeeded",
            "reason": "requested_by_customer",
            "created_at": ms(first.created_at),
        },
        {
            "id": str(second.id),
            "amount": 500,
            "currency": "usd",
            "status": "pending",
            "reason": None,
            "created_at": ms(second.created_at),
        },
    ]
    assert times_parsed(body["disputes"], "evidence_due_by") == [
        {
            "id": lost,
            "status": "lost",
            "amount": 1500,
            "currency": "usd",
            "reason": "product_not_received",
            "evidence_due_by": datetime.fromtimestamp(DUE, UTC),
        }
    ]
    assert (body["disputed"], body["dispute_lost"], body["amount_lost_to_disputes"]) == (
        False,
        True,
        1500,
    )
    assert body["dispute"] == body["disputes"][0]  # none open: the latest


def test_the_dispute_shown_is_the_open_one(placed: dict[str, Any], client: Client) -> None:
    order = Order.objects.get(pk=placed["order"]["id"])
    payment = payment_of(order)
    dispute_on(order, payment, "warning_closed")
    opened = dispute_on(order, payment, "needs_response")
    dispute_on(order, payment, "won")
    body = order_get(client, placed).json()
    assert [d["status"] for d in body["disputes"]] == ["warning_closed", "needs_response", "won"]
    assert (body["dispute"]["id"], body["dispute"]["status"]) == (opened, "needs_response")
    assert body["disputed"] is True


def test_a_dispute_without_a_deadline_shows_evidence_due_by_null(
    placed: dict[str, Any], client: Client
) -> None:
    order = Order.objects.get(pk=placed["order"]["id"])
    dispute_on(order, payment_of(order), "warning_needs_response", evidence_details=None)
    body = order_get(client, placed).json()
    assert body["disputed"] is True
    assert [(d["status"], d["evidence_due_by"]) for d in body["disputes"]] == [
        ("warning_needs_response", None)
    ]


def test_the_order_is_read_in_the_same_number_of_queries_with_any_number_of_refunds_and_disputes(
    placed: dict[str, Any], client: Client, django_assert_num_queries: Any
) -> None:
    # The order, its lines, its refunds, its disputes.
    with django_assert_num_queries(4):
        assert order_get(client, placed).status_code == 200
    order = Order.objects.get(pk=placed["order"]["id"])
    for _ in range(2):
        payment = payment_of(order)
        dispute_on(order, payment, "needs_response")
        for _ in range(3):
            refund_on(order, payment, amount=100)
    with django_assert_num_queries(4):
        body = order_get(client, placed).json()
    assert (len(body["refunds"]), len(body["disputes"])) == (6, 2)


def test_the_sync_answer_shows_the_refunds_and_disputes_too(
    placed: dict[str, Any], client: Client
) -> None:
    order = Order.objects.get(pk=placed["order"]["id"])
    payment = payment_of(order)
    refund = refund_on(order, payment)
    dispute_id = dispute_on(order, payment, "needs_response")
    response = client.post(
        f"/api/v1/orders/{order.pk}/sync", headers={"X-Order-Token": placed["access_token"]}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert [r["id"] for r in body["refunds"]] == [str(refund.id)]
    assert [d["id"] for d in body["disputes"]] == [dispute_id]


def test_a_wrong_token_reads_no_refunds_or_disputes(
    placed: dict[str, Any], client: Client, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(1):
        response = client.get(
            f"/api/v1/orders/{placed['order']['id']}", headers={"X-Order-Token": "wrong"}
        )
    assert response.status_code == 404


def test_the_openapi_schema_describes_the_refunds_and_disputes(client: Client, db: None) -> None:
    schema = client.get("/api/v1/openapi.json").json()
    components = schema["components"]["schemas"]
    order = components["OrderOut"]
    for name in ("payment_status", "amount_paid", "amount_refunded", "amount_lost_to_disputes"):
        assert name in order["required"]
    assert order["properties"]["dispute_lost"]["type"] == "boolean"
    assert order["properties"]["refunds"]["items"] == {
        "$ref": "#/components/schemas/OrderRefundOut"
    }
    assert order["properties"]["disputes"]["items"] == {
        "$ref": "#/components/schemas/OrderDisputeOut"
    }
    dispute = components["OrderDisputeOut"]
    assert set(dispute["required"]) == {
        "id",
        "status",
        "amount",
        "currency",
        "reason",
        "evidence_due_by",
    }
    assert {"type": "null"} in dispute["properties"]["evidence_due_by"]["anyOf"]
    assert {"type": "string", "format": "date-time"} in dispute["properties"]["evidence_due_by"][
        "anyOf"
    ]
    statuses = components["DisputeStatus"]["enum"]
    assert set(statuses) >= {"needs_response", "won", "lost", "warning_closed"}
    refund = components["OrderRefundOut"]
    assert refund["properties"]["created_at"]["format"] == "date-time"
    assert {"type": "null"} in refund["properties"]["reason"]["anyOf"]
    assert set(components["RefundStatus"]["enum"]) == {
        "pending",
        "requires_action",
        "succeeded",
        "failed",
        "canceled",
    }
