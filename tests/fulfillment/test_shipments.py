"""Shipments through the staff API (`/api/v1/staff/orders/{id}/shipments`): partial then
full, the refusals (a clear 4xx, nothing written), Idempotency-Key replays, and who may
ship at all."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from djangomart.fulfillment.models import Shipment, ShipmentLine
from djangomart.notify.models import OutboxEvent
from djangomart.orders.models import Order, OrderEvent, OrderLine
from tests.fulfillment.conftest import (
    KEY,
    bearer,
    line_id,
    paid_order,
    ship_post,
    shipments_url,
    staff_member,
)

pytestmark = pytest.mark.django_db

DHL = {"carrier": "DHL", "tracking_number": "JD0146", "tracking_url": "https://dhl.example/t/1"}


def state(order: Order) -> tuple[Any, ...]:
    """Everything a refused request must leave alone."""
    order.refresh_from_db()
    return (
        order.status,
        order.fulfillment_status,
        list(OrderLine.objects.filter(order=order).values_list("quantity_shipped", flat=True)),
        Shipment.objects.count(),
        ShipmentLine.objects.count(),
        OrderEvent.objects.filter(order=order).count(),
        OutboxEvent.objects.filter(order=order).count(),
    )


def test_a_partial_then_a_full_shipment_fulfil_the_order_once(token: str) -> None:
    order = paid_order({"MUG-RED": 3, "MUG-BLUE": 1})
    client = Client()

    first = ship_post(
        client, order.pk, {"lines": [{"sku": "MUG-RED", "quantity": 2}], **DHL}, **bearer(token)
    )
    assert first.status_code == 201, first.content
    body = first.json()
    assert body["order"]["fulfillment_status"] == "partial"
    assert body["order"]["status"] == "paid"
    assert [(ln["sku"], ln["quantity_to_ship"]) for ln in body["order"]["lines"]] == [
        ("MUG-RED", 1),
        ("MUG-BLUE", 1),
    ]
    order.refresh_from_db()
    assert (order.status, order.fulfillment_status) == ("paid", "partial")
    assert not OutboxEvent.objects.filter(order=order, type="order.fulfilled").exists()

    rest = [
        {"line_id": line_id(order, "MUG-RED"), "quantity": 1},
        {"sku": "MUG-BLUE", "quantity": 1},
    ]
    second = ship_post(
        client,
        order.pk,
        {"lines": rest, "carrier": "UPS"},
        key="shipment-test-key-0002",
        **bearer(token),
    )
    assert second.status_code == 201, second.content
    order.refresh_from_db()
    assert (order.status, order.fulfillment_status) == ("fulfilled", "fulfilled")

    fulfilled = OutboxEvent.objects.filter(order=order, type="order.fulfilled")
    assert fulfilled.count() == 1
    assert fulfilled.get().payload["data"]["order"]["fulfillment_status"] == "fulfilled"
    shipped = OutboxEvent.objects.filter(order=order, type="shipment.created").order_by(
        "created_at"
    )
    assert [event.cause for event in shipped] == [
        body["shipment"]["id"],
        second.json()["shipment"]["id"],
    ]
    payload = shipped[0].payload
    assert set(payload) == {"id", "type", "created", "data"}
    shipment = payload["data"]["shipment"]
    assert set(shipment) == {
        "id",
        "carrier",
        "tracking_number",
        "tracking_url",
        "shipped_at",
        "lines",
    }
    assert (shipment["carrier"], shipment["tracking_number"], shipment["tracking_url"]) == (
        "DHL",
        "JD0146",
        "https://dhl.example/t/1",
    )
    assert shipment["lines"] == [{"sku": "MUG-RED", "name": "Mug Red", "quantity": 2}]
    assert payload["data"]["order"]["fulfillment_status"] == "partial"
    assert payload["data"]["order"]["lines"][0]["quantity_shipped"] == 2

    listed = Client().get(shipments_url(order.pk), **bearer(token))
    assert listed.status_code == 200
    assert [s["carrier"] for s in listed.json()["shipments"]] == ["DHL", "UPS"]
    assert listed.json()["shipments"][1]["shipped_by"] == "sam"
    kinds = list(order.events.values_list("kind", "to_status"))
    assert kinds.count(("shipment", "")) == 2
    assert ("transition", "fulfilled") in kinds


@pytest.mark.parametrize(
    ("lines", "status", "code", "location"),
    [
        ([], 422, "validation_error", "lines"),
        ([{"sku": "MUG-RED", "quantity": 0}], 422, "validation_error", "lines.0.quantity"),
        ([{"sku": "MUG-RED", "quantity": -1}], 422, "validation_error", "lines.0.quantity"),
        ([{"sku": "NOPE", "quantity": 1}], 422, "validation_error", "lines.0.line"),
        ([{"line_id": 999999, "quantity": 1}], 422, "validation_error", "lines.0.line"),
        ([{"quantity": 1}], 422, "validation_error", "lines.0"),
        (
            [{"sku": "MUG-RED", "quantity": 1}, {"sku": "MUG-RED", "quantity": 1}],
            422,
            "validation_error",
            "lines.1.line",
        ),
        ([{"sku": "MUG-RED", "quantity": 4}], 409, "shipment_exceeds_remaining", None),
    ],
)
def test_bad_lines_are_refused_and_nothing_is_written(
    token: str, lines: list[dict[str, Any]], status: int, code: str, location: str | None
) -> None:
    order = paid_order({"MUG-RED": 3})
    before = state(order)
    response = ship_post(Client(), order.pk, {"lines": lines, **DHL}, **bearer(token))
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code
    if location:
        assert location in [d["location"] for d in body["details"]]
    else:
        assert (body["sku"], body["remaining"], body["overridable"]) == ("MUG-RED", 3, False)
    assert state(order) == before


def test_more_than_what_is_left_after_a_shipment_is_refused(token: str) -> None:
    order = paid_order({"MUG-RED": 3})
    assert (
        ship_post(
            Client(),
            order.pk,
            {"lines": [{"sku": "MUG-RED", "quantity": 2}], **DHL},
            **bearer(token),
        ).status_code
        == 201
    )
    before = state(order)
    response = ship_post(
        Client(),
        order.pk,
        {"lines": [{"sku": "MUG-RED", "quantity": 2}], **DHL},
        key="shipment-test-key-0002",
        **bearer(token),
    )
    assert response.status_code == 409
    assert (response.json()["code"], response.json()["remaining"]) == (
        "shipment_exceeds_remaining",
        1,
    )
    assert state(order) == before


@pytest.mark.parametrize(
    ("facts", "code", "overridable"),
    [
        ({"status": "pending", "payment_status": "unpaid"}, "order_not_paid", False),
        ({"status": "canceled"}, "order_not_paid", False),
        ({"status": "fulfilled"}, "order_fulfilled", False),
        ({"payment_status": "refunded", "amount_refunded": 3000}, "order_refunded", True),
        ({"disputed": True}, "order_disputed", True),
        ({"dispute_lost": True, "amount_lost_to_disputes": 1000}, "order_dispute_lost", True),
    ],
)
def test_an_order_that_may_not_ship_is_refused_and_nothing_is_written(
    token: str, facts: dict[str, Any], code: str, overridable: bool
) -> None:
    order = paid_order({"MUG-RED": 3})
    Order.objects.filter(pk=order.pk).update(**facts)
    before = state(order)
    response = ship_post(
        Client(), order.pk, {"lines": [{"sku": "MUG-RED", "quantity": 1}], **DHL}, **bearer(token)
    )
    assert response.status_code == 409, response.content
    assert (response.json()["code"], response.json()["overridable"]) == (code, overridable)
    assert state(order) == before


def test_a_partially_refunded_order_ships(token: str) -> None:
    order = paid_order({"MUG-RED": 3}, payment_status="partially_refunded", amount_refunded=1000)
    response = ship_post(
        Client(), order.pk, {"lines": [{"sku": "MUG-RED", "quantity": 2}], **DHL}, **bearer(token)
    )
    assert response.status_code == 201


def test_the_same_key_and_body_replay_the_shipment_and_another_body_is_refused(
    token: str,
) -> None:
    order = paid_order({"MUG-RED": 3})
    body = {"lines": [{"sku": "MUG-RED", "quantity": 1}], **DHL}
    first = ship_post(Client(), order.pk, body, **bearer(token))
    assert first.status_code == 201
    after_first = state(order)

    replay = ship_post(Client(), order.pk, body, **bearer(token))
    assert replay.status_code == 200
    assert replay.json()["shipment"]["id"] == first.json()["shipment"]["id"]
    assert state(order) == after_first

    other = ship_post(Client(), order.pk, {**body, "tracking_number": "other"}, **bearer(token))
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    assert state(order) == after_first

    # The key is scoped to the order: another order's first use of it ships.
    second_order = paid_order({"MUG-RED": 1})
    assert ship_post(Client(), second_order.pk, body, **bearer(token)).status_code == 201


def test_a_key_is_required_and_bounded(token: str) -> None:
    order = paid_order({"MUG-RED": 3})
    body = {"lines": [{"sku": "MUG-RED", "quantity": 1}], **DHL}
    for key in (None, "short", "x" * 256, "has space in it 12345"):
        response = ship_post(Client(), order.pk, body, key=key, **bearer(token))
        assert response.status_code == 422, key
        assert "header.Idempotency-Key" in [d["location"] for d in response.json()["details"]]
    assert Shipment.objects.count() == 0


def test_a_shipped_time_needs_its_offset(token: str) -> None:
    order = paid_order({"MUG-RED": 3})
    body = {
        "lines": [{"sku": "MUG-RED", "quantity": 1}],
        "carrier": "DHL",
        "shipped_at": "2026-05-01T14:00:00",
    }
    response = ship_post(Client(), order.pk, body, **bearer(token))
    assert response.status_code == 422
    assert response.json()["details"][0]["location"] == "shipped_at"
    at = ship_post(
        Client(),
        order.pk,
        {**body, "shipped_at": "2026-05-01T14:00:00Z"},
        key="shipment-test-key-0009",
        **bearer(token),
    )
    assert at.status_code == 201
    assert at.json()["shipment"]["shipped_at"].startswith("2026-05-01T14:00:00")


def test_a_tracking_url_must_be_http(token: str) -> None:
    order = paid_order({"MUG-RED": 3})
    body = {
        "lines": [{"sku": "MUG-RED", "quantity": 1}],
        "carrier": "DHL",
        "tracking_url": "javascript:alert(1)",
    }
    response = ship_post(Client(), order.pk, body, **bearer(token))
    assert response.status_code == 422
    assert response.json()["details"][0]["location"] == "tracking_url"
    assert Shipment.objects.count() == 0


def test_shipping_needs_a_staff_credential_with_the_permission(shipper: User) -> None:
    order = paid_order({"MUG-RED": 3})
    body = {"lines": [{"sku": "MUG-RED", "quantity": 1}], **DHL}
    before = state(order)

    assert ship_post(Client(), order.pk, body).status_code == 401
    assert ship_post(Client(), order.pk, body, **bearer("not-a-token")).status_code == 401
    refunder = staff_member("rita", "add_refund", "view_shipment")
    from djangomart.accounts.services import staff_token_create

    other = staff_token_create(refunder, "tests")[0]
    denied = ship_post(Client(), order.pk, body, **bearer(other))
    assert (denied.status_code, denied.json()["code"]) == (403, "permission_denied")
    customer = User.objects.create_user("cus", "cus@example.com", "pw")
    session = Client()
    session.force_login(customer)
    assert ship_post(session, order.pk, body).status_code in (401, 403)
    assert state(order) == before
    # Reading needs view (or add): the refunder with view_shipment may read.
    assert Client().get(shipments_url(order.pk), **bearer(other)).status_code == 200


def test_an_unknown_order_is_a_404(token: str) -> None:
    response = ship_post(
        Client(),
        "00000000-0000-0000-0000-000000000000",
        {"lines": [{"sku": "MUG-RED", "quantity": 1}], **DHL},
        **bearer(token),
    )
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    listed = Client().get(shipments_url("00000000-0000-0000-0000-000000000000"), **bearer(token))
    assert listed.status_code == 404


def test_the_order_api_shows_the_fulfillment_status(token: str) -> None:
    order = paid_order({"MUG-RED": 3})
    ship_post(
        Client(), order.pk, {"lines": [{"sku": "MUG-RED", "quantity": 1}], **DHL}, **bearer(token)
    )
    response = Client().get(f"/api/v1/orders/{order.pk}", HTTP_X_ORDER_TOKEN=order.access_token)
    assert response.status_code == 200, response.content
    assert response.json()["fulfillment_status"] == "partial"
    assert response.json()["lines"][0]["quantity_shipped"] == 1
    assert KEY  # the default key the helpers send


def test_the_shipment_list_reads_a_constant_number_of_queries(token: str) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from djangomart.fulfillment.services import shipment_create

    order = paid_order({"MUG-RED": 3, "MUG-BLUE": 3})
    Client().get(shipments_url(order.pk), **bearer(token))  # the token's first use is recorded
    counts = []
    for n in (1, 2):
        shipment_create(
            order_id=order.pk, lines=[("MUG-RED", 1), ("MUG-BLUE", 1)], carrier=f"C{n}", user=None
        )
        with CaptureQueriesContext(connection) as queries:
            response = Client().get(shipments_url(order.pk), **bearer(token))
        assert response.status_code == 200
        assert len(response.json()["shipments"]) == n
        counts.append(len(queries))
    assert counts[0] == counts[1]
