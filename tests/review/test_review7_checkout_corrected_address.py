"""Review 7 (storefront): a corrected checkout form is silently ignored. A guest
continues to payment, comes back from Stripe (the cancel link: the cart), fixes the
email and the shipping address on the checkout page and continues again: the page
answers 302 to Stripe as if it took them, but storefront/views_cart.py _checkout hands
them to carts.services.cart_checkout, which replays the first attempt "whatever its
body" while its order is pending and the lines are unchanged. The order the customer
then pays still ships to the old address and mails the old (mistyped) address; the
page never says so."""

import pytest
from django.test import Client

from djangomart.orders.models import Order
from tests.payments.conftest import sandbox, stripe_settings
from tests.stripe_sandbox.harness import SandboxServer

__all__ = ["sandbox", "stripe_settings"]

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("demo_catalog")]

FIRST = {
    "email": "ada@exmaple.com",  # mistyped
    "address-name": "Ada Lovelace",
    "address-line1": "12 St James's Square",
    "address-city": "London",
    "address-postal_code": "SW1Y 4JH",
    "address-country": "GB",
}
CORRECTED = {
    "email": "ada@example.com",
    "address-name": "Ada Lovelace",
    "address-line1": "1 Rue de Rivoli",
    "address-city": "Paris",
    "address-postal_code": "75001",
    "address-country": "FR",
}


def test_the_corrected_email_and_address_are_the_orders(
    client: Client, sandbox: SandboxServer
) -> None:
    client.post("/shop/cart/add", {"sku": "SUNGLASSES-BLK", "quantity": "1"})
    first = client.post("/shop/checkout/", FIRST)
    assert first.status_code == 302
    # Back from Stripe without paying (its cancel link is the cart), then the fix.
    assert client.get("/shop/cart/").status_code == 200
    again = client.post("/shop/checkout/", CORRECTED)
    assert again.status_code == 302  # accepted, off to Stripe

    order = Order.objects.filter(status="pending").get()
    assert order.shipping_address is not None
    assert (order.email, order.shipping_address["city"]) == ("ada@example.com", "Paris")
