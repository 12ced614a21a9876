"""Review 3: what the cart shows.

- While the cart's own order is pending, the units that order reserved are the cart's:
  a line holding the last unit is not `out_of_stock` to the customer paying for it.
- A cart's subtotal is money: lines priced in two currencies cannot be added up into one
  amount in one of them (and such a cart can never check out)."""

import pytest

from djangomart.catalog.models import Variant
from tests.carts import conftest as cart_fixtures
from tests.carts.conftest import CartClient
from tests.conftest import make_product
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = pytest.mark.django_db

# The cart fixtures (tests/carts/conftest.py).
goods, guest = cart_fixtures.goods, cart_fixtures.guest
Guest = tuple[CartClient, str]


def test_the_cart_whose_order_is_pending_shows_no_stock_problem_for_its_own_units(
    guest: Guest, sandbox: SandboxServer
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "POSTER-A2", 1)  # the last one
    shop.add(cart_id, "TEE-M", 2)
    assert shop.checkout(cart_id, {"email": "ada@example.com"}).status_code == 201
    cart = shop.get(cart_id).json()
    assert cart["problems"] == []
    assert {ln["sku"]: ln["available"] for ln in cart["lines"]} == {"POSTER-A2": 1, "TEE-M": 10}
    assert cart["can_checkout"] is True
    # Others still see what is left to sell.
    assert Variant.objects.get(sku="POSTER-A2").available == 0


def test_a_cart_does_not_add_up_two_currencies_into_one_subtotal(guest: Guest) -> None:
    shop, cart_id = guest
    make_product("euro-mug", variants=[("MUG-EUR", 1800, 5)])
    Variant.objects.filter(sku="MUG-EUR").update(currency="eur")
    shop.add(cart_id, "TEE-M", 1)  # 2000 usd
    response = shop.add(cart_id, "MUG-EUR", 1)  # 1800 eur
    if response.status_code == 200:
        cart = response.json()
        # 3800 "eur" (or "usd") is neither amount: the cart must not offer it.
        assert not (cart["subtotal"] == 3800 and cart["can_checkout"]), cart
    else:
        assert response.status_code in (409, 422)


def test_a_sku_in_another_currency_is_refused_and_a_line_moved_to_one_is_a_problem(
    guest: Guest,
) -> None:
    shop, cart_id = guest
    make_product("euro-cap", variants=[("CAP-EUR", 1500, 5)])
    Variant.objects.filter(sku="CAP-EUR").update(currency="eur")
    shop.add(cart_id, "TEE-M", 1)
    refused = shop.add(cart_id, "CAP-EUR", 1)
    assert (refused.status_code, refused.json()["code"]) == (409, "currency_mismatch")
    # Staff move a variant already in the cart to another currency: the cart says so.
    Variant.objects.filter(sku="CAP-EUR").update(currency="usd")
    assert shop.add(cart_id, "CAP-EUR", 1).status_code == 200
    Variant.objects.filter(sku="CAP-EUR").update(currency="eur")
    cart = shop.get(cart_id).json()
    assert cart["subtotal"] == 2000
    assert cart["can_checkout"] is False
    assert [p["code"] for p in cart["problems"][0]["problems"]] == ["currency_mismatch"]
