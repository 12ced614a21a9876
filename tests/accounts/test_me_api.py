"""GET /api/v1/me, GET /api/v1/me/orders and GET /api/v1/me/orders/{id}: the logged-in
customer and their own orders only, for the app client (X-Session-Token) and the
browser client (session cookie), in a constant number of queries per page."""

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.accounts.helpers import app_login, customer_create
from tests.accounts.me_builders import order_make, order_paid_and_refunded
from tests.orders.conftest import goods

__all__ = ["goods"]

pytestmark = pytest.mark.django_db


def me_get(client: Client, path: str = "/api/v1/me", token: str | None = None) -> Any:
    headers = {} if token is None else {"X-Session-Token": token}
    return client.get(path, headers=headers)


def test_the_app_client_reads_its_customer(client: Client) -> None:
    ada = customer_create("ada@example.com")
    ada.first_name, ada.last_name = "Ada", "Lovelace"
    ada.save()
    token = app_login(client, "ada@example.com")

    body = me_get(Client(), token=token).json()

    assert body == {
        "id": ada.pk,
        "email": "ada@example.com",
        "email_verified": True,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "date_joined": body["date_joined"],
    }
    assert body["date_joined"].startswith(str(ada.date_joined.year))


def test_the_browser_client_reads_its_customer_with_the_cookie(client: Client) -> None:
    ada = customer_create("ada@example.com")
    client.force_login(ada)

    response = me_get(client)

    assert response.status_code == 200
    assert response.json()["id"] == ada.pk


def every_me_operation(order_id: str) -> list[tuple[str, str]]:
    return [
        ("get", "/api/v1/me"),
        ("delete", "/api/v1/me"),
        ("get", "/api/v1/me/orders"),
        ("get", f"/api/v1/me/orders/{order_id}"),
    ]


def test_every_me_endpoint_without_a_customer_is_401_not_authenticated(goods: None) -> None:
    order = order_make(customer_create("ada@example.com"))
    client = Client()
    for method, path in every_me_operation(str(order.pk)):
        response = getattr(client, method)(path, content_type="application/json")
        assert response.status_code == 401, (method, path)
        assert response.json()["code"] == "not_authenticated"


def test_every_me_endpoint_with_a_stale_token_is_401_session_expired(
    client: Client, goods: None
) -> None:
    ada = customer_create("ada@example.com")
    order = order_make(ada)
    token = app_login(client, "ada@example.com")
    logout = client.delete("/_allauth/app/v1/auth/session", headers={"X-Session-Token": token})
    assert logout.status_code == 401  # allauth: logged out

    for method, path in every_me_operation(str(order.pk)):
        response = getattr(Client(), method)(
            path,
            {"password": "correct-horse-battery-9"},
            content_type="application/json",
            headers={"X-Session-Token": token},
        )
        assert response.status_code == 401, (method, path)
        assert response.json()["code"] == "session_expired"
    ada.refresh_from_db()
    assert ada.is_active


def test_the_order_history_is_the_customers_own_newest_first_and_paginated(
    client: Client, goods: None
) -> None:
    ada = customer_create("ada@example.com")
    oldest = order_make(ada, created_ago=timedelta(days=3))
    middle = order_make(ada, created_ago=timedelta(days=2))
    newest = order_make(ada, created_ago=timedelta(days=1))
    order_make(customer_create("bob@example.com"), email="bob@example.com")
    order_make(None)  # a guest's order with ada's email: not hers until she verifies it
    token = app_login(client, "ada@example.com")

    first = me_get(client, "/api/v1/me/orders?page_size=2", token).json()
    second = me_get(client, "/api/v1/me/orders?page=2&page_size=2", token).json()
    beyond = me_get(client, "/api/v1/me/orders?page=3&page_size=2", token).json()

    assert [o["id"] for o in first["items"]] == [str(newest.pk), str(middle.pk)]
    assert [o["id"] for o in second["items"]] == [str(oldest.pk)]
    assert (first["count"], first["page"], first["page_size"]) == (3, 1, 2)
    assert (second["count"], second["page"]) == (3, 2)
    assert beyond["items"] == []
    assert beyond["count"] == 3


def test_an_order_of_the_history_shows_lines_money_facts_and_refunds(
    client: Client, goods: None
) -> None:
    ada = customer_create("ada@example.com")
    order = order_make(ada)
    refund = order_paid_and_refunded(order, refunded=1500)
    token = app_login(client, "ada@example.com")

    (item,) = me_get(client, "/api/v1/me/orders", token).json()["items"]
    detail = me_get(client, f"/api/v1/me/orders/{order.pk}", token).json()
    order_api = me_get(client, f"/api/v1/orders/{order.pk}", token).json()

    assert detail == order_api  # exactly the order API's OrderOut
    assert {k: v for k, v in item.items() if k != "created_at"} == detail
    assert item["created_at"]
    assert detail["payment_status"] == "partially_refunded"
    assert (detail["total"], detail["amount_paid"], detail["amount_refunded"]) == (4000, 4000, 1500)
    assert [(ln["sku"], ln["quantity"]) for ln in detail["lines"]] == [("TEE-M", 2)]
    assert [r["id"] for r in detail["refunds"]] == [str(refund.pk)]


def test_the_order_history_takes_the_same_queries_for_one_order_or_many(
    goods: None, django_assert_num_queries: Any
) -> None:
    ada = customer_create("ada@example.com")
    client = Client()
    client.force_login(ada)
    order_paid_and_refunded(order_make(ada))

    with CaptureQueriesContext(connection) as one:
        assert me_get(client, "/api/v1/me/orders").status_code == 200
    for _ in range(4):
        order_paid_and_refunded(order_make(ada))
    # session, user, count, page, lines, refunds, disputes
    with django_assert_num_queries(len(one.captured_queries)):
        body = me_get(client, "/api/v1/me/orders").json()
    assert len(body["items"]) == 5
    assert len(one.captured_queries) <= 7


def test_another_customers_order_is_404_like_an_unknown_one(client: Client, goods: None) -> None:
    customer_create("ada@example.com")
    bobs = order_make(customer_create("bob@example.com"), email="bob@example.com")
    guests = order_make(None, email="ada@example.com")
    token = app_login(client, "ada@example.com")

    for order_id in (bobs.pk, guests.pk, uuid.uuid4()):
        response = me_get(client, f"/api/v1/me/orders/{order_id}", token)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/me/orders/not-a-uuid",
        "/api/v1/me/orders?page=0",
        "/api/v1/me/orders?page_size=101",
        "/api/v1/me/orders?page=abc",
    ],
)
def test_bad_order_history_input_is_422(client: Client, path: str) -> None:
    client.force_login(customer_create("ada@example.com"))

    response = me_get(client, path)

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
