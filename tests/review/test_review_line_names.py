"""Review of issue 7: a product that the admin accepts must be sellable. Stripe (and the
sandbox, which models it) takes at most 250 characters as a line item's name; the shop
sends "<product name> <variant label>", up to 200 + 1 + 120 characters."""

import pytest
from django.test import Client

from djangomart.catalog.models import Product, Variant
from tests.conftest import make_product
from tests.orders.conftest import checkout_body, checkout_post
from tests.payments.conftest import sandbox, stripe_settings
from tests.stripe_sandbox.harness import SandboxServer

__all__ = ["sandbox", "stripe_settings"]

pytestmark = pytest.mark.django_db


def test_a_variant_with_a_long_product_name_and_label_can_be_bought(
    sandbox: SandboxServer,
) -> None:
    product = make_product("long", variants=[("LONG-1", 2500, 5)])
    # Within the model's limits (name 200, label 120), as the admin would save them.
    Product.objects.filter(pk=product.pk).update(name="Organic cotton tee " * 10)
    Variant.objects.filter(sku="LONG-1").update(label="Size M / Heather grey / Long sleeve " * 3)

    response = checkout_post(Client(), checkout_body(lines=[{"sku": "LONG-1", "quantity": 1}]))

    assert response.status_code == 201, response.json()
