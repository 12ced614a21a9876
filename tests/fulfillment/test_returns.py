"""A staff refund can put units back on the shelf (`restock`): `return` movements in the
stock ledger, in the refund's transaction; never more than a line sold across all its
returns; a replayed refund request restocks nothing again. Against the Stripe sandbox,
as the refund API is."""

import uuid
from typing import Any

import pytest
from django.test import Client

from djangomart.catalog.models import StockMovement, Variant
from djangomart.fulfillment.services import shipment_create
from djangomart.orders.models import Order, OrderLine
from djangomart.payments.checkout import order_sync
from djangomart.payments.models import Refund
from tests.fulfillment.conftest import bearer, staff_member
from tests.payments.conftest import queued_jobs_removed  # noqa: F401 (a fixture)
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = pytest.mark.django_db(transaction=True)

SKU = "CLASSIC-TEE-M"  # 20.00 USD


def paid_order(sandbox: SandboxServer, quantity: int) -> Order:
    from djangomart.catalog.demo import demo_catalog_seed

    demo_catalog_seed()
    response = Client().post(
        "/api/v1/checkout",
        {"email": "buyer@example.com", "lines": [{"sku": SKU, "quantity": quantity}]},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    sandbox.control(
        f"checkout/sessions/{body['checkout_session_id']}/pay", {"card": "4242424242424242"}
    )
    order = order_sync(order_id=uuid.UUID(body["order"]["id"]))
    assert order.status == "paid"
    return order


def refund_post(token: str, order: Order, body: dict[str, Any], key: str) -> Any:
    return Client().post(
        f"/api/v1/staff/orders/{order.pk}/refunds",
        body,
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key,
        **bearer(token),
    )


def returns(order: Order) -> list[tuple[int, int]]:
    rows = StockMovement.objects.filter(order=order, reason="return").order_by("pk")
    return list(rows.values_list("delta", "on_hand_after"))


def on_hand() -> int:
    return Variant.objects.get(sku=SKU).on_hand


@pytest.fixture
def token(db: None) -> str:
    from djangomart.accounts.services import staff_token_create

    return staff_token_create(staff_member("rita", "add_refund"), "tests")[0]


def test_a_refund_returns_shipped_units_to_stock_once_and_never_more_than_sold(
    sandbox: SandboxServer, token: str
) -> None:
    order = paid_order(sandbox, 2)
    shipment_create(order_id=order.pk, lines=[(SKU, 2)], carrier="DHL", user=None)
    shelf = on_hand()

    body = {"amount": 2000, "note": "one came back", "restock": [{"sku": SKU, "quantity": 1}]}
    first = refund_post(token, order, body, "refund-restock-key-01")
    assert first.status_code == 201, first.content
    assert returns(order) == [(1, shelf + 1)]
    assert on_hand() == shelf + 1
    line = OrderLine.objects.get(order=order)
    assert (line.quantity_returned, line.quantity_withdrawn) == (1, 0)
    movement = StockMovement.objects.get(order=order, reason="return")
    assert movement.staff_user is not None
    assert movement.staff_user.username == "rita"
    assert order.events.filter(kind="stock_return").count() == 1

    replay = refund_post(token, order, body, "refund-restock-key-01")
    assert replay.status_code == 200
    assert replay.json()["refund"]["id"] == first.json()["refund"]["id"]
    assert on_hand() == shelf + 1
    assert len(returns(order)) == 1

    # Another body with the same key is refused (restock is part of the body).
    other = refund_post(
        token, order, {**body, "restock": [{"sku": SKU, "quantity": 2}]}, "refund-restock-key-01"
    )
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")

    # 1 of 2 went back: 2 more would exceed what was sold; nothing is refunded either.
    refunds_before = Refund.objects.count()
    too_many = refund_post(
        token,
        order,
        {"amount": 100, "restock": [{"sku": SKU, "quantity": 2}]},
        "refund-restock-key-02",
    )
    assert too_many.status_code == 409, too_many.content
    assert (too_many.json()["code"], too_many.json()["returnable"]) == ("return_exceeds_sold", 1)
    assert Refund.objects.count() == refunds_before
    assert on_hand() == shelf + 1
    assert len(returns(order)) == 1

    unknown = refund_post(
        token,
        order,
        {"amount": 100, "restock": [{"sku": "NOPE", "quantity": 1}]},
        "refund-restock-key-03",
    )
    assert unknown.status_code == 422
    assert unknown.json()["details"][0]["location"] == "restock.0.line"
    assert Refund.objects.count() == refunds_before


def test_units_returned_beyond_those_shipped_are_no_longer_to_ship(
    sandbox: SandboxServer, token: str
) -> None:
    order = paid_order(sandbox, 3)
    shipment_create(order_id=order.pk, lines=[(SKU, 1)], carrier="DHL", user=None)
    shelf = on_hand()

    # 2 back: the shipped one first (the customer sent it back), then 1 that never left,
    # which will not ship any more.
    first = refund_post(
        token,
        order,
        {"amount": 4000, "restock": [{"sku": SKU, "quantity": 2}]},
        "refund-restock-key-11",
    )
    assert first.status_code == 201, first.content
    assert on_hand() == shelf + 2
    line = OrderLine.objects.get(order=order)
    assert (line.quantity_shipped, line.quantity_returned, line.quantity_withdrawn) == (1, 2, 1)
    assert line.quantity_to_ship == 1
    order.refresh_from_db()
    assert (order.fulfillment_status, order.status) == ("partial", "paid")

    # The last unit back too, before it shipped: nothing is left to ship, so what was
    # to ship has shipped and the order is fulfilled.
    last = refund_post(
        token,
        order,
        {"amount": 2000, "restock": [{"sku": SKU, "quantity": 1}]},
        "refund-restock-key-12",
    )
    assert last.status_code == 201, last.content
    line.refresh_from_db()
    assert (line.quantity_returned, line.quantity_withdrawn, line.quantity_to_ship) == (3, 2, 0)
    order.refresh_from_db()
    assert (order.fulfillment_status, order.status) == ("fulfilled", "fulfilled")
    assert on_hand() == shelf + 3
    assert [delta for delta, _ in returns(order)] == [2, 1]


def test_the_admin_refund_form_returns_units_to_stock_once(
    sandbox: SandboxServer, staff_client: Client
) -> None:
    order = paid_order(sandbox, 2)
    line = OrderLine.objects.get(order=order)
    shelf = on_hand()
    page = staff_client.get(f"/admin/orders/order/{order.pk}/refund/")
    assert f'name="restock_{line.pk}"' in page.content.decode()

    form = {
        "amount": "20.00",
        "reason": "",
        "note": "",
        "request_key": str(uuid.uuid4()),
        f"restock_{line.pk}": "1",
    }
    assert staff_client.post(f"/admin/orders/order/{order.pk}/refund/", form).status_code == 302
    assert staff_client.post(f"/admin/orders/order/{order.pk}/refund/", form).status_code == 302
    assert Refund.objects.filter(order=order).count() == 1
    assert on_hand() == shelf + 1
    assert returns(order) == [(1, shelf + 1)]
    line.refresh_from_db()
    # Never shipped: the unit is withdrawn from what is left to ship.
    assert (line.quantity_returned, line.quantity_withdrawn, line.quantity_to_ship) == (1, 1, 1)


@pytest.mark.usefixtures("stripe_settings", "demo_catalog", "queued_jobs_removed")
def test_a_refund_of_an_order_that_never_took_stock_returns_nothing(
    sandbox: SandboxServer, token: str, client: Client, settings: Any
) -> None:
    """An order that expired (its reservation dropped) and whose late payment was held
    is paid money but sold nothing: restocking it would add units that never left."""
    from tests.payments.builders import DEMO_SKU, new_intent_id, order_build
    from tests.payments.test_late_payment_policy import (
        expire_here,
        process_received,
        report_session_event,
    )

    settings.LATE_PAYMENT_POLICY = "hold"
    shelf = Variant.objects.get(sku=DEMO_SKU).on_hand
    order = order_build(quantity=2)
    expire_here(client, order)
    report_session_event(client, order, new_intent_id())()
    process_received()
    refunds_before = Refund.objects.count()

    response = refund_post(
        token, order, {"restock": [{"sku": DEMO_SKU, "quantity": 1}]}, "refund-never-sold-01"
    )

    assert response.status_code == 409, response.content
    assert (response.json()["code"], response.json()["returnable"]) == ("return_exceeds_sold", 0)
    assert Refund.objects.count() == refunds_before
    assert not StockMovement.objects.filter(order=order, reason="return").exists()
    assert Variant.objects.get(sku=DEMO_SKU).on_hand == shelf
    # Without a restock the money goes back as usual.
    refund = refund_post(token, order, {}, "refund-never-sold-02")
    assert refund.status_code == 201, refund.content
