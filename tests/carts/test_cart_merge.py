"""A guest cart joins the customer's cart when the guest logs in (or verifies the email
of a new account) sending its X-Cart-Token, through allauth's real endpoints."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from djangomart.carts.models import Cart
from djangomart.catalog.models import Variant
from tests.accounts.helpers import verification_key
from tests.carts.conftest import PASSWORD, CartClient, customer_client

pytestmark = pytest.mark.django_db

Guest = tuple[CartClient, str]
APP = "/_allauth/app/v1"
BROWSER = "/_allauth/browser/v1"


def app_login(user: User, **headers: str) -> Any:
    return Client().post(
        f"{APP}/auth/login",
        {"email": user.email, "password": PASSWORD},
        content_type="application/json",
        headers=headers,
    )


def cart_lines(cart: Cart) -> dict[str, int]:
    return {ln.variant.sku: ln.quantity for ln in cart.lines.select_related("variant")}


def test_an_app_login_with_the_cart_token_merges_the_guest_cart(
    guest: Guest, customer: User
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M", 2)
    shop.add(cart_id, "MUG-BLUE", 1)
    owner = customer_client(customer)
    mine = owner.create().json()["id"]
    owner.add(mine, "TEE-M", 1)

    response = app_login(customer, **{"X-Cart-Token": shop.headers["X-Cart-Token"]})
    assert response.status_code == 200, response.content
    assert cart_lines(Cart.objects.get(pk=mine)) == {"TEE-M": 3, "MUG-BLUE": 1}
    assert shop.get(cart_id).json()["status"] == "merged"
    assert shop.add(cart_id, "TEE-M").json()["code"] == "cart_closed"


def test_a_browser_login_with_the_cart_token_merges_into_a_new_customer_cart(
    guest: Guest, customer: User
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M", 2)
    browser = Client(enforce_csrf_checks=True)
    browser.get(f"{BROWSER}/config")
    response = browser.post(
        f"{BROWSER}/auth/login",
        {"email": customer.email, "password": PASSWORD},
        content_type="application/json",
        headers={
            "X-CSRFToken": browser.cookies["csrftoken"].value,
            "X-Cart-Token": shop.headers["X-Cart-Token"],
        },
    )
    assert response.status_code == 200, response.content
    mine = browser.get("/api/v1/me/cart").json()
    assert {ln["sku"]: ln["quantity"] for ln in mine["lines"]} == {"TEE-M": 2}
    assert Cart.objects.get(pk=cart_id).status == "merged"


def test_merged_quantities_are_capped_by_availability_and_100(guest: Guest, customer: User) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "MUG-BLUE", 4)  # 5 available
    shop.add(cart_id, "TEE-M", 60)  # 10 available, and 100 a line
    shop.add(cart_id, "POSTER-A2", 1)
    owner = customer_client(customer)
    mine = owner.create().json()["id"]
    owner.add(mine, "MUG-BLUE", 3)
    owner.add(mine, "TEE-M", 50)
    Variant.objects.filter(sku="TEE-M").update(on_hand=500)
    Variant.objects.filter(sku="POSTER-A2").update(active=False)

    app_login(customer, **{"X-Cart-Token": shop.headers["X-Cart-Token"]})
    # MUG: 3 + 4 capped at the 5 available; TEE: 50 + 60 capped at 100; the poster is no
    # longer sold and stays out.
    assert cart_lines(Cart.objects.get(pk=mine)) == {"MUG-BLUE": 5, "TEE-M": 100}


def test_a_missing_bad_or_used_token_changes_nothing_and_never_fails_the_login(
    guest: Guest, customer: User
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M", 2)
    for headers in ({}, {"X-Cart-Token": "nonsense"}, {"X-Cart-Token": "x" * 500}):
        assert app_login(customer, **headers).status_code == 200
    assert Cart.objects.get(pk=cart_id).status == "open"
    assert not Cart.objects.filter(customer=customer, lines__isnull=False).exists()

    app_login(customer, **{"X-Cart-Token": shop.headers["X-Cart-Token"]})
    again = app_login(customer, **{"X-Cart-Token": shop.headers["X-Cart-Token"]})
    assert again.status_code == 200
    assert cart_lines(Cart.objects.get(customer=customer)) == {"TEE-M": 2}  # merged once


def test_the_verification_that_logs_in_after_signup_merges_the_guest_cart(
    guest: Guest,
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "MUG-BLUE", 2)
    signup = Client().post(
        f"{APP}/auth/signup",
        {"email": "new@example.com", "password": PASSWORD},
        content_type="application/json",
    )
    assert signup.status_code == 401  # waiting for verification
    response = Client().post(
        f"{APP}/auth/email/verify",
        {"key": verification_key("new@example.com")},
        content_type="application/json",
        headers={
            "X-Session-Token": signup.json()["meta"]["session_token"],
            "X-Cart-Token": shop.headers["X-Cart-Token"],
        },
    )
    assert response.status_code == 200, response.content
    customer = User.objects.get(email="new@example.com")
    assert cart_lines(Cart.objects.get(customer=customer)) == {"MUG-BLUE": 2}
