"""Fixtures for the cart API. A cart checkout talks to Stripe, so the payment engine's
sandbox fixtures (the offline Stripe over real HTTP) are used here too."""

from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth.models import User
from django.test import Client

from tests.conftest import make_product
from tests.payments.conftest import queued_jobs_removed, sandbox, stripe_proxy, stripe_settings

__all__ = [
    "CartClient",
    "customer",
    "customer_make",
    "goods",
    "guest",
    "queued_jobs_removed",
    "sandbox",
    "stripe_proxy",
    "stripe_settings",
]

# (sku, price in cents, stock)
TEE = ("TEE-M", 2000, 10)
MUG = ("MUG-BLUE", 1500, 5)
LAST_ONE = ("POSTER-A2", 900, 1)
PASSWORD = "a-long-test-password-1"


@pytest.fixture
def goods(db: None) -> None:
    make_product("classic-tee", variants=[TEE])
    make_product("mug", variants=[MUG])
    make_product("poster", variants=[LAST_ONE])


Headers = dict[str, str | None]


class CartClient:
    """A storefront: a Django test client plus what it sends on every cart call (a guest's
    X-Cart-Token, a customer's CSRF token)."""

    def __init__(self, client: Client | None = None, headers: dict[str, str] | None = None) -> None:
        self.client = client or Client()
        self.headers = dict(headers or {})

    def call(self, method: str, path: str, body: Any = None, headers: Headers | None = None) -> Any:
        sent = {**self.headers, **(headers or {})}
        kwargs: dict[str, Any] = {"headers": {k: v for k, v in sent.items() if v is not None}}
        if body is not None:
            kwargs.update(data=body, content_type="application/json")
        return getattr(self.client, method)(path, **kwargs)

    def create(self) -> Any:
        return self.call("post", "/api/v1/carts")

    def get(self, cart_id: str, headers: Headers | None = None) -> Any:
        return self.call("get", f"/api/v1/carts/{cart_id}", headers=headers)

    def add(self, cart_id: str, sku: str, quantity: Any = 1, headers: Headers | None = None) -> Any:
        body = {"sku": sku, "quantity": quantity}
        return self.call("post", f"/api/v1/carts/{cart_id}/lines", body, headers)

    def set(self, cart_id: str, sku: str, quantity: int) -> Any:
        body = {"quantity": quantity}
        return self.call("patch", f"/api/v1/carts/{cart_id}/lines/{sku}", body)

    def remove(self, cart_id: str, sku: str) -> Any:
        return self.call("delete", f"/api/v1/carts/{cart_id}/lines/{sku}")

    def checkout(
        self, cart_id: str, body: dict[str, Any] | None = None, headers: Headers | None = None
    ) -> Any:
        return self.call("post", f"/api/v1/carts/{cart_id}/checkout", body or {}, headers)


def customer_make(email: str = "ada@example.com") -> User:
    user = User.objects.create_user(email.split("@")[0], email, PASSWORD)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def customer_client(user: User) -> CartClient:
    """A browser client logged in as `user` (session cookie, our CSRF token sent)."""
    client = Client()
    client.force_login(user)
    token = client.get("/api/v1/csrf").json()["csrf_token"]
    return CartClient(client, {"X-CSRFToken": token})


@pytest.fixture
def customer(db: None) -> User:
    return customer_make()


@pytest.fixture
def guest(goods: None) -> tuple[CartClient, str]:
    """A guest storefront holding a new cart: (client sending its token, cart id)."""
    shop = CartClient()
    body = shop.create().json()
    shop.headers["X-Cart-Token"] = body["token"]
    return shop, body["id"]
