"""Customers for tests, made and logged in the way frontends do it: through allauth's
headless API (app client: X-Session-Token; browser client: session cookie + CSRF)."""

import re
from typing import Any

from allauth.account.models import EmailAddress
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client

PASSWORD = "correct-horse-battery-9"


def customer_create(email: str = "ada@example.com", password: str = PASSWORD) -> User:
    """A customer with a verified email, as signup + verification leave one."""
    user = User.objects.create_user(username=email.split("@")[0], email=email, password=password)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def app_login(client: Client, email: str, password: str = PASSWORD, **headers: Any) -> str:
    """Logs in as the app client; returns the session token for X-Session-Token."""
    response = client.post(
        "/_allauth/app/v1/auth/login",
        {"email": email, "password": password},
        content_type="application/json",
        **headers,
    )
    assert response.status_code == 200, response.content
    return str(response.json()["meta"]["session_token"])


def browser_csrf(client: Client) -> str:
    """The CSRF token a browser client sends in X-CSRFToken (and holds in its cookie)."""
    response = client.get("/api/v1/csrf")
    assert response.status_code == 200
    return str(response.json()["csrf_token"])


def browser_login(client: Client, email: str, password: str = PASSWORD, **headers: Any) -> str:
    """Logs in as the browser client (session cookie); returns the CSRF token to send."""
    token = browser_csrf(client)
    response = client.post(
        "/_allauth/browser/v1/auth/login",
        {"email": email, "password": password},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
        **headers,
    )
    assert response.status_code == 200, response.content
    return browser_csrf(client)  # rotated at login


def verification_key(to: str) -> str:
    """The key of the newest verification email sent to `to`: the last part of its link,
    a frontend's (/account/verify-email/{key}) or the storefront's
    (/shop/account/confirm-email/{key}/)."""
    for message in reversed(mail.outbox):
        if to in message.to:
            match = re.search(
                r"/account/(?:verify-email|confirm-email)/([^/\s]+)", str(message.body)
            )
            if match:
                from urllib.parse import unquote

                return unquote(match.group(1))
    raise AssertionError(f"no verification email to {to}")


def reset_key(to: str) -> str:
    for message in reversed(mail.outbox):
        if to in message.to:
            match = re.search(r"/account/password/reset/key/([^/\s]+)", str(message.body))
            if match:
                return match.group(1)
    raise AssertionError(f"no password reset email to {to}")


def logged_in(username: str) -> tuple[Client, User]:
    """A client logged in (session cookie) as a new user named `username`."""
    user = User.objects.create_user(username, f"{username}@example.com")
    client = Client()
    client.force_login(user)
    return client, user
