"""Customer accounts through allauth's headless API, as both kinds of frontend use it,
and DjangoMart's own endpoints recognising the customer either way."""

import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client

from tests.accounts.helpers import (
    PASSWORD,
    app_login,
    browser_csrf,
    browser_login,
    customer_create,
    reset_key,
    verification_key,
)

pytestmark = pytest.mark.django_db

APP = "/_allauth/app/v1"
BROWSER = "/_allauth/browser/v1"


def post(client: Client, path: str, body: dict[str, Any], **headers: Any) -> Any:
    return client.post(path, body, content_type="application/json", **headers)


def test_app_signup_needs_the_verification_email_then_logs_in(
    client: Client, settings: Any
) -> None:
    settings.SHOP_NAME = "Acme Outfitters"
    credentials = {"email": "new@example.com", "password": PASSWORD}
    response = post(client, f"{APP}/auth/signup", credentials)
    assert response.status_code == 401  # allauth: authenticated only once verified
    flows = {flow["id"]: flow for flow in response.json()["data"]["flows"]}
    assert flows["verify_email"]["is_pending"] is True
    pending_token = response.json()["meta"]["session_token"]

    (message,) = mail.outbox
    assert message.to == ["new@example.com"]
    assert "Acme Outfitters" in message.subject
    assert "Acme Outfitters" in message.body
    key = verification_key("new@example.com")

    # Not verified yet: no login.
    refused = post(Client(), f"{APP}/auth/login", credentials)
    assert refused.status_code == 401

    verified = post(
        client, f"{APP}/auth/email/verify", {"key": key}, HTTP_X_SESSION_TOKEN=pending_token
    )
    assert verified.status_code == 200, verified.content
    assert verified.json()["meta"]["is_authenticated"] is True
    assert app_login(Client(), "new@example.com")


def test_browser_signup_verify_and_login_with_the_session_cookie(client: Client) -> None:
    csrf = browser_csrf(client)
    response = post(
        client,
        f"{BROWSER}/auth/signup",
        {"email": "web@example.com", "password": PASSWORD},
        HTTP_X_CSRFTOKEN=csrf,
    )
    assert response.status_code == 401
    verified = post(
        client,
        f"{BROWSER}/auth/email/verify",
        {"key": verification_key("web@example.com")},
        HTTP_X_CSRFTOKEN=csrf,
    )
    assert verified.status_code == 200, verified.content
    session = client.get(f"{BROWSER}/auth/session")
    assert session.status_code == 200
    assert session.json()["data"]["user"]["email"] == "web@example.com"


def test_the_customer_is_recognised_by_cookie_or_by_token(client: Client) -> None:
    user = customer_create("ada@example.com")
    token = app_login(Client(), "ada@example.com")
    missing = uuid.uuid4()
    # A customer's view of an order that does not exist: 404 either way (never a 401).
    assert Client().get(f"/api/v1/orders/{missing}", HTTP_X_SESSION_TOKEN=token).status_code == 404
    browser_login(client, "ada@example.com")
    assert client.get(f"/api/v1/orders/{missing}").status_code == 404
    assert User.objects.get(pk=user.pk).is_active


def test_a_stale_session_token_is_a_401_not_a_guest(client: Client) -> None:
    customer_create("ada@example.com")
    token = app_login(client, "ada@example.com")
    assert client.delete(f"{APP}/auth/session", HTTP_X_SESSION_TOKEN=token).status_code == 401
    for response in (
        client.get(f"/api/v1/orders/{uuid.uuid4()}", HTTP_X_SESSION_TOKEN=token),
        client.get(f"/api/v1/orders/{uuid.uuid4()}", HTTP_X_SESSION_TOKEN="not-a-token"),
        post(
            client,
            "/api/v1/checkout",
            {"email": "ada@example.com", "lines": [{"sku": "NO-SUCH-SKU", "quantity": 1}]},
            HTTP_X_SESSION_TOKEN=token,
        ),
    ):
        assert response.status_code == 401
        assert response.json()["code"] == "session_expired"


def test_a_token_client_needs_no_csrf_token_but_a_cookie_client_does() -> None:
    customer_create("ada@example.com")
    app = Client(enforce_csrf_checks=True)
    token = app_login(app, "ada@example.com")
    assert post(app, "/api/v1/checkout", {}, HTTP_X_SESSION_TOKEN=token).status_code == 422

    browser = Client(enforce_csrf_checks=True)
    csrf = browser_login(browser, "ada@example.com")
    refused = post(browser, "/api/v1/checkout", {})
    assert (refused.status_code, refused.json()["code"]) == (403, "csrf_failed")
    assert post(browser, "/api/v1/checkout", {}, HTTP_X_CSRFTOKEN=csrf).status_code == 422


def test_password_change_then_reset_by_email(client: Client) -> None:
    customer_create("ada@example.com")
    token = app_login(client, "ada@example.com")
    changed = post(
        client,
        f"{APP}/account/password/change",
        {"current_password": PASSWORD, "new_password": "another-long-secret-77"},
        HTTP_X_SESSION_TOKEN=token,
    )
    assert changed.status_code == 200, changed.content
    app_login(Client(), "ada@example.com", "another-long-secret-77")

    requested = post(Client(), f"{APP}/auth/password/request", {"email": "ada@example.com"})
    assert requested.status_code == 200
    reset = post(
        Client(),
        f"{APP}/auth/password/reset",
        {"key": reset_key("ada@example.com"), "password": "a-third-long-secret-88"},
    )
    assert reset.status_code in (200, 401), reset.content  # 401: reset done, log in next
    app_login(Client(), "ada@example.com", "a-third-long-secret-88")


def test_email_change_takes_effect_once_the_new_address_is_verified(client: Client) -> None:
    customer_create("ada@example.com")
    token = app_login(client, "ada@example.com")
    added = post(
        client, f"{APP}/account/email", {"email": "ada.new@example.com"}, HTTP_X_SESSION_TOKEN=token
    )
    assert added.status_code == 200, added.content
    verified = post(
        client,
        f"{APP}/auth/email/verify",
        {"key": verification_key("ada.new@example.com")},
        HTTP_X_SESSION_TOKEN=token,
    )
    assert verified.status_code == 200, verified.content
    emails = client.get(f"{APP}/account/email", HTTP_X_SESSION_TOKEN=token).json()["data"]
    assert [(e["email"], e["primary"], e["verified"]) for e in emails] == [
        ("ada.new@example.com", True, True)
    ]
    app_login(Client(), "ada.new@example.com")


def test_failed_logins_are_rate_limited_by_allauth(client: Client) -> None:
    customer_create("ada@example.com")
    codes = [
        post(client, f"{APP}/auth/login", {"email": "ada@example.com", "password": "wrong"}).json()[
            "errors"
        ][0]["code"]
        for _ in range(6)
    ]
    assert codes == ["email_password_mismatch"] * 5 + ["too_many_login_attempts"]
    # Even the right password now waits: the limit is on the account, not on the guesses.
    right = post(client, f"{APP}/auth/login", {"email": "ada@example.com", "password": PASSWORD})
    assert right.json()["errors"][0]["code"] == "too_many_login_attempts"


def test_allauth_publishes_its_openapi_specification_linked_from_the_api_docs(
    client: Client,
) -> None:
    spec = client.get("/_allauth/openapi.json")
    assert spec.status_code == 200
    assert any(path.endswith("/v1/auth/login") for path in spec.json()["paths"])
    description = client.get("/api/v1/openapi.json").json()["info"]["description"]
    assert "/_allauth/openapi.html" in description


def test_a_signup_token_waiting_for_verification_is_a_guests(client: Client) -> None:
    signup = post(client, f"{APP}/auth/signup", {"email": "wait@example.com", "password": PASSWORD})
    pending = signup.json()["meta"]["session_token"]
    cart = post(client, "/api/v1/carts", {}, HTTP_X_SESSION_TOKEN=pending)
    assert cart.status_code == 201, cart.content
    assert cart.json()["token"]  # a guest's cart
    me = client.get("/api/v1/me", HTTP_X_SESSION_TOKEN=pending)
    assert (me.status_code, me.json()["code"]) == (401, "not_authenticated")
