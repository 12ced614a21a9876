"""The gateway's refund and event-list calls against the sandbox over HTTP."""

from typing import Any

import pytest
from django.test import Client

from djangomart.payments import gateway
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = pytest.mark.django_db(transaction=True)

GOOD_CARD = "4242424242424242"


def paid_intent(client: Client, sandbox: SandboxServer) -> tuple[str, str]:
    from djangomart.catalog.demo import demo_catalog_seed

    demo_catalog_seed()
    response = client.post(
        "/api/v1/checkout",
        {"email": "buyer@example.com", "lines": [{"sku": "CLASSIC-TEE-M", "quantity": 1}]},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    result = sandbox.control(
        f"checkout/sessions/{body['checkout_session_id']}/pay", {"card": GOOD_CARD}
    )
    return body["order"]["id"], str(result["payment_intent"]["id"])


def test_a_refund_is_created_once_per_refund_id_and_listed_by_payment_intent(
    sandbox: SandboxServer, client: Client
) -> None:
    order_id, intent_id = paid_intent(client, sandbox)
    args: dict[str, Any] = {"refund_id": "5f1d3c8e-0000-4000-8000-000000000001",
                            "order_id": order_id, "payment_intent_id": intent_id,
                            "amount": 100, "reason": "requested_by_customer"}  # fmt: skip
    first = gateway.refund_create(**args)
    again = gateway.refund_create(**args)
    assert first["id"] == again["id"]
    assert first["metadata"] == {"refund_id": args["refund_id"], "order_id": order_id}
    listed = gateway.refunds_list(intent_id)
    assert [r["id"] for r in listed] == [first["id"]]
    assert gateway.refund_retrieve(first["id"])["amount"] == 100
    with pytest.raises(gateway.GatewayRejected) as refused:
        gateway.refund_create(**{**args, "refund_id": "5f1d3c8e-0000-4000-8000-000000000002",
                                 "amount": 10**7})  # fmt: skip
    assert refused.value.code == "amount_too_large"


def test_events_are_listed_newest_first_by_type_and_time(
    sandbox: SandboxServer, client: Client
) -> None:
    paid_intent(client, sandbox)
    page = gateway.events_page(types=["checkout.session.completed", "payment_intent.succeeded"],
                               created_gte=0)  # fmt: skip
    assert {e["type"] for e in page.events} == {
        "checkout.session.completed",
        "payment_intent.succeeded",
    }
    created = [e["created"] for e in page.events]
    assert created == sorted(created, reverse=True)
    later = gateway.events_page(types=["checkout.session.completed"], created_gte=created[0] + 10)
    assert later.events == []
