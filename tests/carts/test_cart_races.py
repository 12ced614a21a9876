"""Carts under concurrency, with real threads (one database connection each) through the
real API: concurrent writes to one cart, and a double-submitted cart checkout."""

from typing import Any

import pytest

from djangomart.carts.models import Cart, CartLine
from djangomart.catalog.models import Variant
from djangomart.orders.models import Order
from tests.carts.conftest import CartClient
from tests.payments.race_helpers import race
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = pytest.mark.django_db(transaction=True)

Guest = tuple[CartClient, str]


def test_concurrent_adds_of_one_sku_make_one_line_with_the_summed_quantity(
    guest: Guest,
) -> None:
    shop, cart_id = guest
    token = shop.headers["X-Cart-Token"]
    writers = 6

    def add() -> Any:
        return CartClient(headers={"X-Cart-Token": token}).add(cart_id, "TEE-M", 3)

    responses = race([add] * writers)
    assert [r.status_code for r in responses] == [200] * writers
    line = CartLine.objects.get()
    assert line.quantity == 3 * writers
    assert Cart.objects.get().revision == writers
    # Each answer saw its own write: the quantities seen are all different.
    assert sorted(r.json()["lines"][0]["quantity"] for r in responses) == list(
        range(3, 3 * writers + 1, 3)
    )


def test_a_double_submitted_cart_checkout_makes_one_order_named_by_both_answers(
    guest: Guest, sandbox: SandboxServer
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M", 2)
    token = shop.headers["X-Cart-Token"]
    # Stripe answers slowly, so that the second click arrives while the first is there.
    sandbox.configure(api_latency_min=0.15, api_latency_max=0.15)

    def click(key: str) -> Any:
        return CartClient(headers={"X-Cart-Token": token}).checkout(
            cart_id, {"email": "ada@example.com"}, headers={"Idempotency-Key": key}
        )

    responses = race([lambda: click("k" * 20), lambda: click("z" * 20)])
    bodies = [r.json() for r in responses]
    assert [r.status_code for r in responses] in ([201, 201], [201, 409], [409, 201]), bodies
    order = Order.objects.get()
    assert order.status == "pending"
    for body in bodies:
        if body.get("code") is not None:
            # Stripe still creating the session for the first click: the engine's
            # checkout_in_progress, naming the same order.
            assert (body["code"], body["id"]) == ("checkout_in_progress", str(order.id))
        else:
            assert body["order"]["id"] == str(order.id)
            assert body["checkout_session_id"] == order.stripe_checkout_session_id
    assert Variant.objects.get(sku="TEE-M").reserved == 2
    assert {ln.sku: ln.quantity for ln in order.lines.all()} == {"TEE-M": 2}
    assert Cart.objects.get().order_id == order.id
    sessions = sandbox.client().v1.checkout.sessions.list({"limit": 10}).data
    assert [session.id for session in sessions] == [order.stripe_checkout_session_id]


def test_a_write_while_the_checkout_is_at_stripe_cancels_that_checkout(
    guest: Guest, sandbox: SandboxServer
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M", 2)
    token = shop.headers["X-Cart-Token"]
    sandbox.configure(api_latency_min=0.2, api_latency_max=0.2)

    def click() -> Any:
        return CartClient(headers={"X-Cart-Token": token}).checkout(
            cart_id, {"email": "ada@example.com"}
        )

    def add_while_at_stripe() -> Any:
        sandbox.wait_executing(method="POST", path="/v1/checkout/sessions")
        return CartClient(headers={"X-Cart-Token": token}).add(cart_id, "MUG-BLUE")

    checkout, added = race([click, add_while_at_stripe])
    assert added.status_code == 200
    assert (checkout.status_code, checkout.json()["code"]) == (409, "cart_changed")
    order = Order.objects.get()
    assert order.status == "canceled"
    session = sandbox.client().v1.checkout.sessions.retrieve(str(order.stripe_checkout_session_id))
    assert session.status == "expired"  # nobody can pay the old lines
    assert Variant.objects.get(sku="TEE-M").reserved == 0
    cart = Cart.objects.get()
    assert {ln.variant.sku: ln.quantity for ln in cart.lines.select_related("variant")} == {
        "TEE-M": 2,
        "MUG-BLUE": 1,
    }
