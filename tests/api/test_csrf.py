"""Unsafe API requests authenticated by the session cookie need Django's CSRF token;
clients without a session (guests, token clients) need none."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from djangomart.orders.models import Order
from tests.orders.conftest import checkout_body, checkout_post, goods
from tests.payments.conftest import sandbox, stripe_settings
from tests.stripe_sandbox.harness import SandboxServer

__all__ = ["goods", "sandbox", "stripe_settings"]

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(db: None) -> Client:
    user = User.objects.create_user("ada", "ada@example.com", "pw-for-tests")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def test_a_cross_site_text_plain_post_creates_no_order_for_a_logged_in_user(
    goods: None, sandbox: SandboxServer, logged_in: Client
) -> None:
    # What a hostile page's <form enctype="text/plain"> sends along with the cookie.
    response = logged_in.post(
        "/api/v1/checkout",
        '{"email": "ada@example.com", "lines": [{"sku": "TEE-M", "quantity": 2}], "x": "="}',
        content_type="text/plain",
        HTTP_ORIGIN="https://evil.example.com",
    )
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "csrf_failed"
    assert not Order.objects.exists()


def test_a_logged_in_json_post_without_the_csrf_token_is_refused(
    goods: None, sandbox: SandboxServer, logged_in: Client
) -> None:
    response = checkout_post(logged_in)
    assert (response.status_code, response.json()["code"]) == (403, "csrf_failed")
    assert not Order.objects.exists()


def test_a_logged_in_post_with_the_csrf_token_is_accepted(
    goods: None, sandbox: SandboxServer, logged_in: Client
) -> None:
    logged_in.get("/api/v1/csrf")
    token = logged_in.cookies["csrftoken"].value
    response = checkout_post(logged_in, checkout_body(), HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201, response.content
    assert Order.objects.get().customer is not None


def test_safe_requests_of_a_logged_in_user_need_no_token(goods: None, logged_in: Client) -> None:
    assert logged_in.get("/api/v1/products").status_code == 200


def test_a_guest_without_a_session_cookie_needs_no_csrf_token(
    goods: None, sandbox: SandboxServer
) -> None:
    response = checkout_post(Client(enforce_csrf_checks=True), HTTP_ORIGIN="https://shop.example")
    assert response.status_code == 201, response.content


def test_the_stripe_webhook_stays_csrf_exempt(db: None) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post("/webhooks/stripe", "{}", content_type="application/json")
    assert response.status_code == 400  # a bad signature, not a CSRF refusal
    assert response.json()["code"] != "csrf_failed"
