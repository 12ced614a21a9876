"""A guest's orders join the account of whoever verifies the guest's email through
allauth (signup, or adding an email later), case-insensitively; never before the email
is verified, never another email's orders, and the guest's order token keeps working."""

from typing import Any

import pytest
from django.test import Client

from djangomart.accounts.guest_orders import guest_orders_attach
from djangomart.orders.models import Order
from tests.accounts.helpers import app_login, customer_create, verification_key
from tests.accounts.me_builders import order_make
from tests.orders.conftest import checkout_body, checkout_post, goods
from tests.payments.conftest import sandbox, stripe_settings
from tests.stripe_sandbox.harness import SandboxServer

__all__ = ["goods", "sandbox", "stripe_settings"]

pytestmark = pytest.mark.django_db

APP = "/_allauth/app/v1"
PASSWORD = "signup-horse-battery-3"


def post(client: Client, path: str, body: dict[str, Any], **headers: str) -> Any:
    return client.post(path, body, content_type="application/json", headers=headers)


def signup(email: str) -> str:
    """Signs up as the app client; returns the pending session token."""
    response = post(Client(), f"{APP}/auth/signup", {"email": email, "password": PASSWORD})
    assert response.status_code == 401, response.content  # waiting for verification
    return str(response.json()["meta"]["session_token"])


def verify(email: str, pending_token: str) -> str:
    """Verifies `email` with the key of its email; returns the logged-in session token
    (a new one after signup, the same one for a customer already logged in)."""
    response = post(
        Client(),
        f"{APP}/auth/email/verify",
        {"key": verification_key(email)},
        **{"X-Session-Token": pending_token},
    )
    assert response.status_code == 200, response.content
    return str(response.json()["meta"].get("session_token", pending_token))


def my_orders(token: str) -> list[str]:
    response = Client().get("/api/v1/me/orders", headers={"X-Session-Token": token})
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["items"]]


def test_a_guest_order_joins_the_account_once_its_email_is_verified(
    sandbox: SandboxServer, goods: None
) -> None:
    placed = checkout_post(Client(), checkout_body(email="Ada.Guest@Example.com"))
    assert placed.status_code == 201, placed.content
    guest = placed.json()
    other = order_make(None, email="someone.else@example.com")

    pending = signup("ada.guest@example.com")
    assert Order.objects.get(pk=guest["order"]["id"]).customer_id is None  # not verified yet
    token = verify("ada.guest@example.com", pending)

    assert my_orders(token) == [guest["order"]["id"]]
    other.refresh_from_db()
    assert other.customer_id is None
    by_token = Client().get(
        f"/api/v1/orders/{guest['order']['id']}", headers={"X-Order-Token": guest["access_token"]}
    )
    assert by_token.status_code == 200


def test_an_unverified_signup_attaches_nothing(goods: None) -> None:
    order = order_make(None, email="ada@example.com")

    signup("ada@example.com")

    order.refresh_from_db()
    assert order.customer_id is None


def test_a_verified_new_email_brings_its_guest_orders(goods: None) -> None:
    ada = customer_create("ada@example.com")
    old_guest = order_make(None, email="ada@example.com")  # placed while logged out
    work_guest = order_make(None, email="ada@work.example")
    token = app_login(Client(), "ada@example.com")
    added = post(Client(), f"{APP}/account/email", {"email": "ada@work.example"},
                 **{"X-Session-Token": token})  # fmt: skip
    assert added.status_code == 200, added.content
    work_guest.refresh_from_db()
    assert work_guest.customer_id is None  # added, not verified

    verify("ada@work.example", token)

    work_guest.refresh_from_db()
    old_guest.refresh_from_db()
    assert work_guest.customer_id == ada.pk
    # Only the address just verified counts (ada@example.com was verified before).
    assert old_guest.customer_id is None


def test_an_order_of_another_customer_is_never_moved(goods: None) -> None:
    bob = customer_create("bob@example.com")
    bobs = order_make(bob, email="ada@example.com")  # bob bought with ada's email
    ada = customer_create("ada@example.com")

    assert guest_orders_attach(customer=ada, email="ADA@example.com") == 0

    bobs.refresh_from_db()
    assert bobs.customer_id == bob.pk
