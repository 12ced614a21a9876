"""Review 3: a repeat of a cart checkout while its order is pending (or still being
created) returns that order, also when the order reserved the last units: the cart's
own reservation is not a stock problem of the cart's own checkout."""

import threading
from typing import Any

import pytest
from django.db import connection

from djangomart.catalog.models import Variant
from djangomart.orders.models import Order
from tests.carts import conftest as cart_fixtures
from tests.carts.conftest import CartClient
from tests.stripe_sandbox.harness import SandboxServer

# The cart fixtures (tests/carts/conftest.py).
goods, guest = cart_fixtures.goods, cart_fixtures.guest
Guest = tuple[CartClient, str]
EMAIL = {"email": "ada@example.com"}


@pytest.mark.django_db
def test_a_repeat_of_a_checkout_that_reserved_the_last_unit_returns_the_same_order(
    guest: Guest, sandbox: SandboxServer
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "POSTER-A2", 1)  # the last one
    first = shop.checkout(cart_id, EMAIL)
    assert first.status_code == 201, first.content
    again = shop.checkout(cart_id, EMAIL)
    assert again.status_code == 201, again.content
    assert again.json()["order"]["id"] == first.json()["order"]["id"]
    assert again.json()["checkout_session_id"] == first.json()["checkout_session_id"]
    assert Order.objects.count() == 1
    assert Variant.objects.get(sku="POSTER-A2").reserved == 1


@pytest.mark.django_db(transaction=True)
def test_a_second_click_while_stripe_creates_the_session_of_the_last_unit_joins_it(
    guest: Guest, sandbox: SandboxServer
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "POSTER-A2", 1)
    token = shop.headers["X-Cart-Token"]
    sandbox.configure(api_latency_min=0.3, api_latency_max=0.3)
    results: dict[str, Any] = {}

    def click() -> None:
        try:
            results["first"] = CartClient(headers={"X-Cart-Token": token}).checkout(cart_id, EMAIL)
        finally:
            connection.close()

    thread = threading.Thread(target=click)
    thread.start()
    sandbox.wait_executing(method="POST", path="/v1/checkout/sessions")
    second = CartClient(headers={"X-Cart-Token": token}).checkout(cart_id, EMAIL)
    thread.join(30)
    order = Order.objects.get()
    assert results["first"].status_code == 201
    # The engine's answer for the same attempt: checkout_in_progress naming the order
    # (or the order itself), never the cart's own reservation seen as out_of_stock.
    body = second.json()
    if second.status_code == 409:
        assert (body["code"], body["id"]) == ("checkout_in_progress", str(order.id)), body
    else:
        assert (second.status_code, body["order"]["id"]) == (201, str(order.id))
    assert Variant.objects.get(sku="POSTER-A2").reserved == 1
