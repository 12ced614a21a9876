"""An order's stock through its life: checkout reserves (on_hand untouched), paid turns
the reservation into a sale once (on_hand and reserved both go down, a `sale` row in
the ledger), failed / expired / canceled drop the reservation once."""

from typing import Any

import pytest
from django.db import transaction
from django.test import Client

from djangomart.catalog.demo import DEMO_STOCK
from djangomart.catalog.models import StockMovement, Variant
from djangomart.orders import transitions
from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order
from tests.orders.conftest import checkout_body, checkout_post
from tests.payments.builders import DEMO_SKU, new_intent_id, order_build
from tests.payments.conftest import event_json, post_event, run_jobs, session_object
from tests.stripe_sandbox.harness import SandboxServer


def stock(sku: str = DEMO_SKU) -> tuple[int, int]:
    variant = Variant.objects.get(sku=sku)
    return variant.on_hand, variant.reserved


def sales(order: Order) -> list[tuple[str, int, int]]:
    return list(
        StockMovement.objects.filter(order=order, reason="sale").values_list(
            "variant__sku", "delta", "on_hand_after"
        )
    )


def deliver(client: Client, event_type: str, obj: dict[str, Any]) -> None:
    assert post_event(client, event_json(event_type, obj)).status_code == 200
    run_jobs()


@pytest.mark.django_db
def test_checkout_reserves_without_touching_what_is_on_hand(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    lines = [{"sku": "TEE-M", "quantity": 2}, {"sku": "MUG-BLUE", "quantity": 5}]
    assert checkout_post(client, checkout_body(lines=lines)).status_code == 201
    assert (stock("TEE-M"), stock("MUG-BLUE")) == ((10, 2), (5, 5))
    assert not StockMovement.objects.exclude(reason="restock").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("stripe_settings", "demo_catalog")
def test_a_paid_order_sells_its_reservation_once_however_often_stripe_says_so(
    client: Client,
) -> None:
    order = order_build(quantity=2)
    assert stock() == (DEMO_STOCK, 2)
    session = session_object(order, payment_intent=new_intent_id())
    deliver(client, "checkout.session.completed", session)
    deliver(client, "checkout.session.completed", session)  # another event, same facts
    deliver(client, "checkout.session.async_payment_succeeded", session)
    order.refresh_from_db()
    assert order.status == "paid"
    assert stock() == (DEMO_STOCK - 2, 0)
    assert sales(order) == [(DEMO_SKU, -2, DEMO_STOCK - 2)]


@pytest.mark.django_db
def test_a_sync_that_finds_the_session_paid_sells_the_reservation(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    placed = checkout_post(client).json()
    sandbox.control(
        f"checkout/sessions/{placed['checkout_session_id']}/pay", {"card": "4242424242424242"}
    )
    response = client.post(
        f"/api/v1/orders/{placed['order']['id']}/sync",
        headers={"X-Order-Token": placed["access_token"]},
    )
    assert response.json()["status"] == "paid", response.content
    assert stock("TEE-M") == (10 - 2, 0)
    assert sales(Order.objects.get()) == [("TEE-M", -2, 8)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("stripe_settings", "demo_catalog")
@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        ("checkout.session.expired", "expired"),
        ("checkout.session.async_payment_failed", "failed"),
    ],
)
def test_an_order_that_ends_unpaid_drops_its_reservation_once(
    client: Client, event_type: str, status: str
) -> None:
    order = order_build(quantity=3)
    other = order_build(quantity=1)  # still pending: its hold stays
    session = session_object(order, status="expired", payment_status="unpaid")
    deliver(client, event_type, session)
    deliver(client, event_type, session)
    deliver(client, "checkout.session.expired", session)
    order.refresh_from_db()
    assert (order.status, order.stock_released) == (status, True)
    assert stock() == (DEMO_STOCK, 1)
    assert not StockMovement.objects.exclude(reason="restock").exists()  # on_hand unchanged
    assert other.lines.get().quantity == 1


@pytest.mark.django_db
def test_a_canceled_order_drops_its_reservation_and_a_later_payment_sells_nothing(
    demo_catalog: None,
) -> None:
    order = order_build(quantity=2)
    with transaction.atomic():
        locked = orders_lock([order.pk])[order.pk]
        assert transitions.apply(locked, Order.Status.CANCELED, message="test")
    with transaction.atomic():
        locked = orders_lock([order.pk])[order.pk]
        assert not transitions.apply(locked, Order.Status.PAID)
        assert not transitions.apply(locked, Order.Status.CANCELED)
    assert stock() == (DEMO_STOCK, 0)
    assert sales(order) == []
