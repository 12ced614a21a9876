"""Review 9 (storefront account emails): accounts/adapter.py _on_public_url moves only
two of allauth's links (the reset key's, the verification's) onto PUBLIC_URL, and
drops PUBLIC_URL's path when it does.

1. allauth's other emails still link wherever the Host header said. A password reset
   (or a signup) for an address with no account sends allauth's "unknown account"
   email, whose signup link is request.build_absolute_uri (allauth
   flows/signup.get_signup_url): anyone picks, among ALLOWED_HOSTS ('.shop.example'),
   the host a genuine mail from the shop sends its reader to. The footer of that very
   email says PUBLIC_URL.
2. PUBLIC_URL is a base the rest of the project appends paths to (PUBLIC_URL +
   reverse(...) for the Checkout return URLs, HEADLESS_FRONTEND_URLS = PUBLIC_URL +
   "/shop/account/..."), so a shop behind a proxy at https://www.shop.example/store
   gets its API's reset links under /store; _on_public_url keeps the request's path
   and takes only PUBLIC_URL's scheme and host, so the storefront's reset link for the
   same step loses /store."""

from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client

from tests.accounts.helpers import customer_create

pytestmark = pytest.mark.django_db


def _links(body: str, marker: str) -> list[str]:
    return [w for w in body.split() if marker in w and w.startswith("http")]


def test_the_unknown_account_emails_link_points_at_public_url_whatever_the_host(
    settings: Any,
) -> None:
    settings.ALLOWED_HOSTS = [".shop.example"]
    settings.PUBLIC_URL = "https://www.shop.example"
    client = Client(HTTP_HOST="attacker.shop.example")

    answer = client.post("/shop/account/password/reset/", {"email": "nobody@example.com"})

    assert answer.status_code == 302
    (message,) = mail.outbox
    links = _links(str(message.body), "/signup")
    assert links, message.body
    assert urlsplit(links[0])[:2] == ("https", "www.shop.example"), links[0]


def test_a_reset_link_keeps_public_urls_path(settings: Any) -> None:
    settings.ALLOWED_HOSTS = [".shop.example"]
    settings.PUBLIC_URL = "https://www.shop.example/store"
    customer_create("ada@example.com")
    client = Client(HTTP_HOST="www.shop.example")

    answer = client.post("/shop/account/password/reset/", {"email": "ada@example.com"})

    assert answer.status_code == 302
    (message,) = mail.outbox
    links = _links(str(message.body), "/password/reset/key/")
    assert links, message.body
    assert links[0].startswith("https://www.shop.example/store/shop/account/password/reset/key/"), (
        links[0]
    )
