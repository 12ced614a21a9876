"""Review 3: a cart write the cart refuses (no such line, over 100 units, a 51st line)
is bad input: a clear 4xx that changes nothing. It must not first cancel the cart's
pending order and expire the Checkout Session the customer may be paying."""

from collections.abc import Callable
from typing import Any

import pytest

from djangomart.catalog.models import Variant
from djangomart.orders.models import Order
from tests.carts import conftest as cart_fixtures
from tests.carts.conftest import CartClient
from tests.conftest import make_product
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = pytest.mark.django_db

# The cart fixtures (tests/carts/conftest.py).
goods, guest = cart_fixtures.goods, cart_fixtures.guest
Guest = tuple[CartClient, str]


def _set_unknown(shop: CartClient, cart_id: str) -> Any:
    return shop.set(cart_id, "MUG-BLUE", 2)


def _remove_unknown(shop: CartClient, cart_id: str) -> Any:
    return shop.remove(cart_id, "MUG-BLUE")


def _add_past_100(shop: CartClient, cart_id: str) -> Any:
    return shop.add(cart_id, "TEE-M", 100)


@pytest.mark.parametrize(
    ("write", "status", "code"),
    [
        (_set_unknown, 404, "line_not_found"),
        (_remove_unknown, 404, "line_not_found"),
        (_add_past_100, 409, "quantity_limit"),
    ],
)
def test_a_refused_write_leaves_the_pending_order_and_its_session_alone(
    guest: Guest,
    sandbox: SandboxServer,
    write: Callable[[CartClient, str], Any],
    status: int,
    code: str,
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M", 2)
    body = shop.checkout(cart_id, {"email": "ada@example.com"}).json()
    response = write(shop, cart_id)
    assert (response.status_code, response.json()["code"]) == (status, code)
    order = Order.objects.get(pk=body["order"]["id"])
    assert order.status == "pending"
    session = sandbox.client().v1.checkout.sessions.retrieve(body["checkout_session_id"])
    assert session.status == "open"
    assert Variant.objects.get(sku="TEE-M").reserved == 2
    again = shop.checkout(cart_id, {"email": "ada@example.com"}).json()
    assert again["order"]["id"] == body["order"]["id"]


def test_a_51st_line_refused_leaves_the_pending_order_alone(
    guest: Guest, sandbox: SandboxServer
) -> None:
    shop, cart_id = guest
    make_product("stickers", variants=[(f"ST-{n}", 100, 5) for n in range(50)])
    for n in range(50):
        assert shop.add(cart_id, f"ST-{n}").status_code == 200
    body = shop.checkout(cart_id, {"email": "ada@example.com"}).json()
    response = shop.add(cart_id, "TEE-M")
    assert (response.status_code, response.json()["code"]) == (409, "cart_full")
    assert Order.objects.get(pk=body["order"]["id"]).status == "pending"
