"""The storefront's checkout page starts the payment engine's checkout from the cart
(carts.services.cart_checkout, the API's own) and sends the browser to Stripe Checkout:
the offline sandbox here, over real HTTP."""

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import User
from django.test import Client

from djangomart.accounts.addresses import AddressIn, address_create
from djangomart.orders.models import Order
from djangomart.payments.checkout import order_sync
from tests.payments.conftest import sandbox, stripe_settings
from tests.stripe_sandbox.harness import SandboxServer

__all__ = ["sandbox", "stripe_settings"]

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("demo_catalog")]

ADDRESS = {
    "address-name": "Ada Lovelace",
    "address-line1": "12 St James's Square",
    "address-city": "London",
    "address-postal_code": "SW1Y 4JH",
    "address-country": "GB",
}


def session_of(location: str) -> str:
    return urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1]


def test_a_guest_checks_out_to_the_sandbox_and_comes_back_paid(
    client: Client, sandbox: SandboxServer
) -> None:
    client.post("/shop/cart/add", {"sku": "SUNGLASSES-BLK", "quantity": "2"})
    page = client.get("/shop/checkout/")
    assert page.status_code == 200
    assert 'for="id_email"' in page.content.decode()

    response = client.post("/shop/checkout/", {"email": "ada@example.com", **ADDRESS})

    assert response.status_code == 302, response.content.decode()
    assert response["Location"].startswith(sandbox.url)
    order = Order.objects.get()
    assert (order.email, order.total) == ("ada@example.com", 15800)
    assert order.shipping_address is not None
    assert order.shipping_address["city"] == "London"
    sandbox.control(
        f"checkout/sessions/{order.stripe_checkout_session_id}/pay", {"card": "4242424242424242"}
    )
    order_sync(order_id=order.pk)
    success = urlsplit(order.success_url)
    back = client.get(success.path, {"session_id": str(order.stripe_checkout_session_id)})
    assert back.status_code == 200
    assert 'data-state="paid"' in back.content.decode()
    assert "<script" not in back.content.decode().lower()
    assert parse_qs(success.query)["session_id"] == ["{CHECKOUT_SESSION_ID}"]


def test_a_customer_ships_to_a_saved_address(client: Client, sandbox: SandboxServer) -> None:
    user = User.objects.create_user("ada", "ada@example.com", "pw-Storefront-1")
    saved = address_create(
        customer=user,
        data=AddressIn(name="Ada", line1="1 Road", city="Paris", country="FR"),
    )
    client.force_login(user)
    client.post("/shop/cart/add", {"sku": "SUNGLASSES-BLK", "quantity": "1"})
    page = client.get("/shop/checkout/").content.decode()
    assert "1 Road" in page
    assert 'name="email"' not in page

    response = client.post("/shop/checkout/", {"address_id": str(saved.pk)})

    assert response.status_code == 302, response.content.decode()
    order = Order.objects.get()
    assert (order.email, order.customer_id) == ("ada@example.com", user.pk)
    assert order.shipping_address is not None
    assert order.shipping_address["city"] == "Paris"


def test_someone_elses_address_id_is_refused(client: Client, sandbox: SandboxServer) -> None:
    other = User.objects.create_user("bob", "bob@example.com", "pw-Storefront-1")
    theirs = address_create(
        customer=other, data=AddressIn(name="Bob", line1="2 Road", city="Rome", country="IT")
    )
    user = User.objects.create_user("ada", "ada@example.com", "pw-Storefront-1")
    address_create(
        customer=user, data=AddressIn(name="Ada", line1="1 Road", city="Paris", country="FR")
    )
    client.force_login(user)
    client.post("/shop/cart/add", {"sku": "SUNGLASSES-BLK", "quantity": "1"})
    response = client.post("/shop/checkout/", {"address_id": str(theirs.pk)})
    assert response.status_code == 422
    assert not Order.objects.exists()


def test_checkout_is_rate_limited_like_the_api(
    client: Client, sandbox: SandboxServer, settings: Any
) -> None:
    settings.RATE_LIMIT_CHECKOUT = "1/m"
    client.post("/shop/cart/add", {"sku": "SUNGLASSES-BLK", "quantity": "1"})
    assert (
        client.post("/shop/checkout/", {"email": "ada@example.com", **ADDRESS}).status_code == 302
    )
    again = client.post("/shop/checkout/", {"email": "ada@example.com", **ADDRESS})
    assert again.status_code == 429
    assert 'class="message error"' in again.content.decode()
