"""Review 7 (storefront): the order history's ?page= is read as an unbounded integer
and queried before it is clamped to the last page (storefront/views_account.py
order_list: `_page_number`, then order_page_for_customer with it): a page number past
PostgreSQL's bigint is an OFFSET the database refuses, a 500 instead of the last page
that a smaller stale page number gets."""

import pytest
from django.test import Client

from tests.accounts.helpers import customer_create

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("number", ["9223372036854775807", "1" + "0" * 30])
def test_a_huge_page_number_is_the_last_page_not_a_500(number: str) -> None:
    customer = customer_create("ada@example.com")
    client = Client(HTTP_HOST="127.0.0.1", raise_request_exception=False)
    client.force_login(customer, backend="allauth.account.auth_backends.AuthenticationBackend")

    response = client.get("/shop/account/orders/", {"page": number})

    assert response.status_code == 200
    assert "My orders" in response.content.decode()
