"""Review 7 (storefront accounts): the links in the emails of a step taken on the
storefront are built from the request's Host header, not from PUBLIC_URL ("this
server's https:// address", which the API's steps, the Checkout return URLs and the
emails' own footer use). allauth's views build them with request.build_absolute_uri;
so whoever asks for a password reset picks, among ALLOWED_HOSTS (any name under a
'.shop.example' entry, or anything with '*'), the host the victim's reset key is sent
to. Here the email's footer says https://shop.example while its reset link points at
http://other.example."""

from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client

from tests.accounts.helpers import customer_create

pytestmark = pytest.mark.django_db


def test_a_reset_link_points_at_public_url_whatever_the_host_header(settings: Any) -> None:
    settings.ALLOWED_HOSTS = [".shop.example"]
    settings.PUBLIC_URL = "https://www.shop.example"
    customer_create("ada@example.com")
    client = Client(HTTP_HOST="attacker.shop.example")

    answer = client.post("/shop/account/password/reset/", {"email": "ada@example.com"})

    assert answer.status_code == 302
    (message,) = mail.outbox
    links = [w for w in str(message.body).split() if "/password/reset/key/" in w]
    assert links, message.body
    assert urlsplit(links[0])[:2] == ("https", "www.shop.example")
