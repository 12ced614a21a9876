"""Review 3: a guest's orders join only the account that proves it owns the guest's own
mailbox. PostgreSQL's UPPER() (behind Django's `iexact`) folds some non-ASCII letters
onto ASCII ones (U+0131, the dotless i, becomes `I`), so verifying a look-alike address on a
domain one registered (`joe@ma\u0131l.example`, a different mailbox: its punycode is
`xn--mal-kua.example`) used to attach another person's guest orders (their name, address
and phone in the shipping snapshot) to the look-alike account."""

from typing import Any

import pytest
from django.test import Client

from djangomart.orders.models import Order
from tests.accounts.helpers import verification_key
from tests.accounts.me_builders import SHIPPING, order_make
from tests.orders.conftest import goods

__all__ = ["goods"]

pytestmark = pytest.mark.django_db

APP = "/_allauth/app/v1"
PASSWORD = "signup-horse-battery-3"


def post(path: str, body: dict[str, Any], **headers: str) -> Any:
    return Client().post(path, body, content_type="application/json", headers=headers)


def test_verifying_a_look_alike_email_attaches_no_one_elses_guest_orders(goods: None) -> None:
    victims = order_make(None, email="joe@mail.example", shipping=SHIPPING)
    look_alike = "joe@ma\u0131l.example"  # dotless i: another domain, another mailbox

    signed_up = post(f"{APP}/auth/signup", {"email": look_alike, "password": PASSWORD})
    assert signed_up.status_code == 401, signed_up.content  # waiting for verification
    pending = signed_up.json()["meta"]["session_token"]
    verified = post(
        f"{APP}/auth/email/verify",
        {"key": verification_key(look_alike)},
        **{"X-Session-Token": pending},
    )
    assert verified.status_code == 200, verified.content

    victims.refresh_from_db()
    assert victims.customer_id is None
    token = verified.json()["meta"].get("session_token", pending)
    history = Client().get("/api/v1/me/orders", headers={"X-Session-Token": token})
    assert history.status_code == 200
    assert history.json()["items"] == []


def test_a_verified_email_still_attaches_its_orders_in_any_ascii_case(goods: None) -> None:
    from djangomart.accounts.guest_orders import guest_orders_attach
    from tests.accounts.helpers import customer_create

    ada = customer_create("ada@example.com")
    order = order_make(None, email="ADA@Example.COM")

    assert guest_orders_attach(customer=ada, email="ada@example.com") == 1
    assert Order.objects.get(pk=order.pk).customer_id == ada.pk
