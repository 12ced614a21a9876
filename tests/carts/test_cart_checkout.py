"""POST /api/v1/carts/{id}/checkout against the Stripe sandbox (real HTTP, official SDK):
the payment engine's checkout from the cart, idempotent per cart, with the cart's
problems shown before paying, one payable session per cart, and the cart closed once
its order is paid."""

from typing import Any

import pytest
from django.contrib.auth.models import User

from djangomart.carts.models import Cart
from djangomart.catalog.models import Variant
from djangomart.orders.models import Order
from tests.carts.conftest import CartClient, customer_client
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = pytest.mark.django_db

Guest = tuple[CartClient, str]
PAID_CARD = "4242424242424242"
EMAIL = {"email": "ada@example.com"}


def session_status(sandbox: SandboxServer, session_id: str) -> str:
    return str(sandbox.client().v1.checkout.sessions.retrieve(session_id).status)


def pay_and_sync(sandbox: SandboxServer, body: dict[str, Any]) -> None:
    """The customer pays at Stripe; the landing page's sync applies it (no webhook)."""
    sandbox.control(f"checkout/sessions/{body['checkout_session_id']}/pay", {"card": PAID_CARD})
    response = CartClient().call(
        "post",
        f"/api/v1/orders/{body['order']['id']}/sync",
        headers={"X-Order-Token": body["access_token"]},
    )
    assert response.json()["status"] == "paid", response.content


def test_a_guest_cart_checkout_answers_like_post_checkout_with_the_cart_lines(
    guest: Guest, sandbox: SandboxServer
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M", 2)
    shop.add(cart_id, "MUG-BLUE", 1)
    response = shop.checkout(cart_id, EMAIL)
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"order", "access_token", "checkout_url", "checkout_session_id"}
    order = Order.objects.get()
    assert (body["order"]["id"], body["access_token"]) == (str(order.id), order.access_token)
    assert {ln["sku"]: ln["quantity"] for ln in body["order"]["lines"]} == {
        "TEE-M": 2, "MUG-BLUE": 1
    }  # fmt: skip
    assert (order.total, order.email, order.customer_id) == (5500, "ada@example.com", None)
    assert Variant.objects.get(sku="TEE-M").reserved == 2
    assert session_status(sandbox, body["checkout_session_id"]) == "open"
    cart = shop.get(cart_id).json()
    assert (cart["status"], cart["order_id"]) == ("open", str(order.id))


def test_a_repeat_while_pending_returns_the_same_order_and_session_whatever_its_key(
    guest: Guest, sandbox: SandboxServer
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M", 2)
    first = shop.checkout(cart_id, EMAIL, headers={"Idempotency-Key": "a" * 32}).json()
    for key in ("a" * 32, "b" * 32, None):
        again = shop.checkout(cart_id, EMAIL, headers={"Idempotency-Key": key})
        assert again.status_code == 201
        assert again.json()["order"]["id"] == first["order"]["id"]
        assert again.json()["checkout_session_id"] == first["checkout_session_id"]
    assert Order.objects.count() == 1
    assert Variant.objects.get(sku="TEE-M").reserved == 2


def test_a_guest_must_send_an_email_and_a_customer_defaults_to_their_own(
    guest: Guest, customer: User, sandbox: SandboxServer
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M")
    response = shop.checkout(cart_id, {})
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")
    assert response.json()["details"][0]["location"] == "email"
    assert not Order.objects.exists()

    owner = customer_client(customer)
    mine = owner.create().json()["id"]
    owner.add(mine, "MUG-BLUE")
    body = owner.checkout(mine).json()
    order = Order.objects.get(pk=body["order"]["id"])
    assert (order.email, order.customer_id) == ("ada@example.com", customer.pk)


def test_an_inline_address_goes_to_the_order(guest: Guest, sandbox: SandboxServer) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M")
    address = {"name": "Ada Lovelace", "line1": "1 Main St", "city": "London",
               "postal_code": "N1 1AA", "country": "GB"}  # fmt: skip
    response = shop.checkout(cart_id, {**EMAIL, "address": address})
    assert response.status_code == 201, response.content
    assert response.json()["order"]["shipping_address"]["line1"] == "1 Main St"


def test_an_empty_cart_is_409_cart_empty(guest: Guest, sandbox: SandboxServer) -> None:
    shop, cart_id = guest
    response = shop.checkout(cart_id, EMAIL)
    assert (response.status_code, response.json()["code"]) == (409, "cart_empty")


def test_a_price_or_stock_change_since_adding_is_a_409_naming_it_before_paying(
    guest: Guest, sandbox: SandboxServer
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M", 2)
    shop.add(cart_id, "MUG-BLUE", 5)
    Variant.objects.filter(sku="TEE-M").update(price=2100)
    Variant.objects.filter(sku="MUG-BLUE").update(reserved=3)
    response = shop.checkout(cart_id, EMAIL)
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "cart_has_problems"
    found = {p["sku"]: [x["code"] for x in p["problems"]] for p in body["problems"]}
    assert found == {"TEE-M": ["price_changed"], "MUG-BLUE": ["not_enough_stock"]}
    assert not Order.objects.exists()
    assert sandbox.requests(method="POST", path="/v1/checkout/sessions") == []

    # The customer accepts the new price and takes what is left: now it checks out.
    shop.set(cart_id, "TEE-M", 2)
    shop.set(cart_id, "MUG-BLUE", 2)
    response = shop.checkout(cart_id, EMAIL)
    assert response.status_code == 201, response.content
    assert response.json()["order"]["total"] == 2 * 2100 + 2 * 1500


def test_a_write_while_pending_cancels_the_order_and_its_session_then_applies(
    guest: Guest, sandbox: SandboxServer
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M", 2)
    first = shop.checkout(cart_id, EMAIL).json()
    body = shop.add(cart_id, "MUG-BLUE").json()
    assert {ln["sku"] for ln in body["lines"]} == {"TEE-M", "MUG-BLUE"}
    old = Order.objects.get(pk=first["order"]["id"])
    assert old.status == "canceled"
    assert session_status(sandbox, first["checkout_session_id"]) == "expired"
    assert Variant.objects.get(sku="TEE-M").reserved == 0

    second = shop.checkout(cart_id, EMAIL).json()
    assert second["order"]["id"] != first["order"]["id"]
    assert {ln["sku"] for ln in second["order"]["lines"]} == {"TEE-M", "MUG-BLUE"}


def test_a_paid_cart_is_closed_and_me_cart_then_starts_a_new_one(
    goods: None, customer: User, sandbox: SandboxServer
) -> None:
    owner = customer_client(customer)
    cart_id = owner.create().json()["id"]
    owner.add(cart_id, "TEE-M")
    body = owner.checkout(cart_id).json()
    pay_and_sync(sandbox, body)
    cart = owner.get(cart_id).json()
    assert (cart["status"], cart["order_id"]) == ("closed", body["order"]["id"])
    response = owner.add(cart_id, "MUG-BLUE")
    assert (response.status_code, response.json()["code"]) == (409, "cart_checked_out")
    again = owner.checkout(cart_id)
    assert (again.status_code, again.json()["code"]) == (409, "cart_checked_out")
    fresh = owner.call("get", "/api/v1/me/cart").json()
    assert fresh["id"] != cart_id
    assert (fresh["status"], fresh["lines"]) == ("open", [])


def test_a_write_after_the_customer_paid_at_stripe_is_refused_and_the_payment_kept(
    guest: Guest, sandbox: SandboxServer
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M")
    body = shop.checkout(cart_id, EMAIL).json()
    sandbox.control(f"checkout/sessions/{body['checkout_session_id']}/pay", {"card": PAID_CARD})
    response = shop.set(cart_id, "TEE-M", 3)
    assert (response.status_code, response.json()["code"]) == (409, "cart_checked_out")
    assert Order.objects.get().status == "paid"  # the completed session was applied
    assert shop.get(cart_id).json()["status"] == "closed"
    assert Cart.objects.get().lines.get().quantity == 1


def test_an_expired_order_lets_the_cart_check_out_again(
    guest: Guest, sandbox: SandboxServer
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M")
    first = shop.checkout(cart_id, EMAIL).json()
    Order.objects.filter(pk=first["order"]["id"]).update(status="expired")
    second = shop.checkout(cart_id, EMAIL)
    assert second.status_code == 201, second.content
    assert second.json()["order"]["id"] != first["order"]["id"]


def test_cart_checkout_is_rate_limited_as_checkout(
    guest: Guest, sandbox: SandboxServer, settings: Any
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M")
    settings.RATE_LIMIT_CHECKOUT = "1/m"
    assert shop.checkout(cart_id, EMAIL).status_code == 201
    response = shop.checkout(cart_id, EMAIL)
    assert (response.status_code, response.json()["code"]) == (429, "rate_limited")
