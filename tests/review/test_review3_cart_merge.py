"""Review 3: the merge at login.

- A login whose guest cart brings nothing (empty, or every line already capped) changes
  nothing in the customer's cart, so it must not cancel the customer's pending order and
  expire the Checkout Session they may be paying on another device.
- A guest cart whose checkout is at Stripe when its guest logs in: its lines go into the
  customer's cart, so that checkout's order must not stay payable and become the merged
  cart's (the same goods in a live order and in the customer's cart); it answers
  cart_changed, as for any write that lands while a checkout is at Stripe."""

import threading
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

from djangomart.carts.models import Cart
from djangomart.catalog.models import Variant
from djangomart.orders.models import Order
from tests.carts import conftest as cart_fixtures
from tests.carts.conftest import PASSWORD, CartClient, customer_client
from tests.stripe_sandbox.harness import SandboxServer

# The cart fixtures (tests/carts/conftest.py).
goods, guest, customer = cart_fixtures.goods, cart_fixtures.guest, cart_fixtures.customer
Guest = tuple[CartClient, str]


def app_login(user: User, token: str) -> Any:
    return Client().post(
        "/_allauth/app/v1/auth/login",
        {"email": user.email, "password": PASSWORD},
        content_type="application/json",
        headers={"X-Cart-Token": token},
    )


@pytest.mark.django_db
@pytest.mark.parametrize("guest_lines", [{}, {"TEE-M": 1}])
def test_a_login_whose_guest_cart_brings_nothing_keeps_the_customers_pending_order(
    guest: Guest, customer: User, sandbox: SandboxServer, guest_lines: dict[str, int]
) -> None:
    shop, cart_id = guest
    for sku, quantity in guest_lines.items():
        shop.add(cart_id, sku, quantity)
    Variant.objects.filter(sku="TEE-M").update(on_hand=500)
    owner = customer_client(customer)
    mine = owner.create().json()["id"]
    owner.add(mine, "TEE-M", 100)  # the line's maximum: the guest's tee adds nothing
    body = owner.checkout(mine).json()

    assert app_login(customer, shop.headers["X-Cart-Token"]).status_code == 200
    order = Order.objects.get(pk=body["order"]["id"])
    assert order.status == "pending"
    session = sandbox.client().v1.checkout.sessions.retrieve(body["checkout_session_id"])
    assert session.status == "open"
    again = owner.checkout(mine)
    assert again.status_code == 201, again.content
    assert again.json()["order"]["id"] == body["order"]["id"]


@pytest.mark.django_db
def test_a_guest_line_capped_only_by_the_customers_own_pending_order_is_merged(
    guest: Guest, customer: User, sandbox: SandboxServer
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M", 2)
    owner = customer_client(customer)
    mine = owner.create().json()["id"]
    owner.add(mine, "TEE-M", 8)  # of 10: the pending order holds 8, 2 left to sell
    body = owner.checkout(mine).json()

    assert app_login(customer, shop.headers["X-Cart-Token"]).status_code == 200
    # The customer's order is canceled for the merge, so all 10 are theirs to have.
    lines = {ln.variant.sku: ln.quantity for ln in Cart.objects.get(pk=mine).lines.all()}
    assert lines == {"TEE-M": 10}
    assert Order.objects.get(pk=body["order"]["id"]).status == "canceled"
    assert Variant.objects.get(sku="TEE-M").reserved == 0


@pytest.mark.django_db(transaction=True)
def test_a_login_while_the_guest_checkout_is_at_stripe_does_not_leave_it_payable(
    guest: Guest, customer: User, sandbox: SandboxServer
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M", 2)
    token = shop.headers["X-Cart-Token"]
    sandbox.configure(api_latency_min=0.3, api_latency_max=0.3)
    results: dict[str, Any] = {}

    def click() -> None:
        try:
            results["checkout"] = CartClient(headers={"X-Cart-Token": token}).checkout(
                cart_id, {"email": "ada@example.com"}
            )
        finally:
            connection.close()

    thread = threading.Thread(target=click)
    thread.start()
    sandbox.wait_executing(method="POST", path="/v1/checkout/sessions")
    login = app_login(customer, token)
    thread.join(30)
    assert login.status_code == 200

    guest_cart = Cart.objects.get(pk=cart_id)
    order = Order.objects.get()
    mine = Cart.objects.get(customer=customer)
    merged = {ln.variant.sku: ln.quantity for ln in mine.lines.select_related("variant")}
    if guest_cart.status == "merged":
        # The lines are the customer's now: the guest's order must not be payable.
        assert merged == {"TEE-M": 2}
        assert (results["checkout"].status_code, results["checkout"].json()["code"]) == (
            409,
            "cart_changed",
        )
        assert order.status == "canceled"
        session = sandbox.client().v1.checkout.sessions.retrieve(
            str(order.stripe_checkout_session_id)
        )
        assert session.status == "expired"
        assert Variant.objects.get(sku="TEE-M").reserved == 0
    else:
        # Not merged: the guest pays its own order, and the customer's cart has nothing.
        assert results["checkout"].status_code == 201
        assert merged == {}


@pytest.mark.django_db
def test_a_guest_line_in_another_currency_is_left_out_of_the_merge(
    guest: Guest, customer: User
) -> None:
    """A cart holds one currency (an order does): the guest's euro line stays out of the
    customer's dollar cart instead of making a cart that can never be checked out."""
    from tests.conftest import make_product

    shop, cart_id = guest
    make_product("euro-cap", variants=[("CAP-EUR", 1500, 5)])
    Variant.objects.filter(sku="CAP-EUR").update(currency="eur")
    assert shop.add(cart_id, "CAP-EUR", 1).status_code == 200
    owner = customer_client(customer)
    mine = owner.create().json()["id"]
    owner.add(mine, "TEE-M", 1)

    assert app_login(customer, shop.headers["X-Cart-Token"]).status_code == 200
    cart = owner.get(mine).json()
    assert [(ln["sku"], ln["quantity"]) for ln in cart["lines"]] == [("TEE-M", 1)]
    assert cart["can_checkout"] is True
