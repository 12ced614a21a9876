"""Fixtures for the order API. Checkout talks to Stripe, so the payment engine's
sandbox fixtures (the offline Stripe over real HTTP) are used here too."""

from typing import Any

import pytest
from django.test import Client

from tests.conftest import make_product
from tests.payments.conftest import sandbox, stripe_proxy, stripe_settings

__all__ = ["checkout_body", "checkout_post", "goods", "sandbox", "stripe_proxy", "stripe_settings"]

# (sku, price in cents, stock)
TEE = ("TEE-M", 2000, 10)
MUG = ("MUG-BLUE", 1500, 5)
LAST_ONE = ("POSTER-A2", 900, 1)


@pytest.fixture
def goods(db: None) -> None:
    make_product("classic-tee", variants=[TEE])
    make_product("mug", variants=[MUG])
    make_product("poster", variants=[LAST_ONE])


def checkout_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "email": "ada@example.com",
        "lines": [{"sku": "TEE-M", "quantity": 2}],
    }
    body.update(overrides)
    return body


def checkout_post(client: Client, body: dict[str, Any] | None = None, **headers: Any) -> Any:
    return client.post(
        "/api/v1/checkout",
        checkout_body() if body is None else body,
        content_type="application/json",
        **headers,
    )
