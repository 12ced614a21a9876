"""Review 7 (storefront, white-label): the shop's name set in the admin's Brand
settings never reaches the emails. BrandSettings says it is "the storefront's (and the
emails') look" (storefront/models.py), yet accounts/adapter.py (subject and body of
allauth's emails) and notify/emails/render.py read settings.SHOP_NAME only: a customer
of "Acme Outfitters" resets their password on Acme's pages and gets a mail from
"[DjangoMart]"."""

import pytest
from django.core import mail
from django.test import Client

from djangomart.storefront.models import BrandSettings
from tests.accounts.helpers import customer_create

pytestmark = pytest.mark.django_db


def test_the_admins_shop_name_is_the_password_reset_emails() -> None:
    BrandSettings.objects.create(pk=1, shop_name="Acme Outfitters")
    customer_create("ada@example.com")
    client = Client(HTTP_HOST="127.0.0.1")
    assert "Acme Outfitters" in client.get("/shop/account/password/reset/").content.decode()

    assert (
        client.post("/shop/account/password/reset/", {"email": "ada@example.com"}).status_code
        == 302
    )

    (message,) = mail.outbox
    assert message.subject.startswith("[Acme Outfitters]")
    assert "DjangoMart" not in message.subject + str(message.body)
