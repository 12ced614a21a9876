"""CORS for white-label frontends on other origins (django-cors-headers): the allow-list
from CORS_ALLOWED_ORIGINS, credentials for the browser client's cookie, and the API's
own headers allowed in a preflight."""

from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

SHOP = "https://shop.example"


@pytest.fixture(autouse=True)
def _origins(settings: Any) -> None:
    settings.CORS_ALLOWED_ORIGINS = [SHOP]


def preflight(client: Client, path: str, origin: str, headers: str) -> Any:
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS=headers,
    )


@pytest.mark.parametrize("path", ["/api/v1/checkout", "/_allauth/app/v1/auth/login"])
def test_an_allowed_origin_may_send_credentials_and_the_apis_headers(
    client: Client, path: str
) -> None:
    wanted = "content-type,x-csrftoken,x-session-token,x-cart-token,x-order-token,idempotency-key"
    response = preflight(client, path, SHOP, wanted)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == SHOP
    assert response["Access-Control-Allow-Credentials"] == "true"
    allowed = {h.strip() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert set(wanted.split(",")) <= allowed


def test_another_origin_gets_no_cors_headers(client: Client) -> None:
    response = preflight(client, "/api/v1/checkout", "https://evil.example", "x-session-token")
    assert "Access-Control-Allow-Origin" not in response
    simple = client.get("/api/v1/products", HTTP_ORIGIN="https://evil.example")
    assert "Access-Control-Allow-Origin" not in simple


def test_answers_to_an_allowed_origin_carry_its_cors_headers(client: Client) -> None:
    response = client.get("/api/v1/products", HTTP_ORIGIN=SHOP)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == SHOP
    # Errors too: a frontend must be able to read the JSON of a refusal.
    refused = client.get("/api/v1/orders/not-a-uuid", HTTP_ORIGIN=SHOP)
    assert refused.status_code == 422
    assert refused["Access-Control-Allow-Origin"] == SHOP


def test_the_admin_and_webhooks_are_not_cross_origin_endpoints(client: Client) -> None:
    response = client.get("/admin/login/", HTTP_ORIGIN=SHOP)
    assert "Access-Control-Allow-Origin" not in response
