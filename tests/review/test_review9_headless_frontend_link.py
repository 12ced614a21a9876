"""Review 9 (headless account emails): accounts/adapter.py _on_public_url decides "built
from the request's Host" by comparing the link's host with request.get_host(). A
frontend link (HEADLESS_FRONTEND_URLS, from FRONTEND_URL) is on the request's host
whenever the frontend serves the API through its own origin (a storefront at
https://www.shop.example proxying /_allauth/ to this server, PUBLIC_URL
https://api.shop.example): the headless API's reset link to the frontend's page is then
moved onto PUBLIC_URL's host, where no /account/password/reset/key/ page exists. The
docstring promises "A link to another frontend (HEADLESS_FRONTEND_URLS) is left as it
is"."""

from typing import Any

import pytest
from django.core import mail
from django.test import Client

from tests.accounts.helpers import customer_create

pytestmark = pytest.mark.django_db

FRONTEND = "https://www.shop.example"


def test_the_apis_reset_link_to_the_frontend_is_left_as_it_is(settings: Any) -> None:
    settings.ALLOWED_HOSTS = [".shop.example"]
    settings.PUBLIC_URL = "https://api.shop.example"
    settings.FRONTEND_URL = FRONTEND
    settings.HEADLESS_FRONTEND_URLS = {
        "account_confirm_email": FRONTEND + "/account/verify-email/{key}",
        "account_reset_password": FRONTEND + "/account/password/reset",
        "account_reset_password_from_key": FRONTEND + "/account/password/reset/key/{key}",
        "account_signup": FRONTEND + "/account/signup",
    }
    customer_create("ada@example.com")
    client = Client(HTTP_HOST="www.shop.example", HTTP_X_FORWARDED_PROTO="https")

    answer = client.post(
        "/_allauth/app/v1/auth/password/request",
        {"email": "ada@example.com"},
        content_type="application/json",
    )

    assert answer.status_code == 200, answer.content
    (message,) = mail.outbox
    links = [w for w in str(message.body).split() if "/password/reset/key/" in w]
    assert links, message.body
    assert links[0].startswith(FRONTEND + "/account/password/reset/key/"), links[0]
