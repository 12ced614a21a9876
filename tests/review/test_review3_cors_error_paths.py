"""Review 3: every refusal an allowed frontend can meet must carry its CORS headers, or
the browser hides the JSON error behind an opaque network failure. CorsMiddleware sat
inside JsonErrorMiddleware (which replaces framework error pages with a fresh JSON
response, dropping their headers) and NulGuardMiddleware (which answers a NUL itself):
a 400 for a NUL, a 405 for a wrong method and a 404 for an unknown path reached the
frontend without Access-Control-Allow-Origin."""

from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

SHOP = "https://shop.example"


@pytest.fixture(autouse=True)
def _origins(settings: Any) -> None:
    settings.CORS_ALLOWED_ORIGINS = [SHOP]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/api/v1/products?search=%00", 400),  # NulGuardMiddleware
        ("put", "/api/v1/products", 405),  # django-ninja's bare 405, made JSON
        ("get", "/api/v1/no-such-endpoint", 404),  # Django's 404 page, made JSON
    ],
)
def test_refusals_to_an_allowed_origin_carry_its_cors_headers(
    client: Client, method: str, path: str, status: int
) -> None:
    response = getattr(client, method)(path, HTTP_ORIGIN=SHOP)
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    assert response.get("Access-Control-Allow-Origin") == SHOP
    assert response.get("Access-Control-Allow-Credentials") == "true"


def test_the_staff_api_is_not_open_to_the_storefronts_origins(client: Client) -> None:
    # The staff API takes the admin's session cookie (docs/staff-api.md: a staff
    # frontend served with the admin, same origin). A storefront's origin, allowed with
    # credentials for customers, must not read or drive it with a staff member's cookie
    # (it could fetch /api/v1/csrf and then POST refunds): no CORS grant there.
    path = "/api/v1/staff/orders/00000000-0000-0000-0000-000000000000/refunds"
    preflight = client.options(
        path,
        HTTP_ORIGIN=SHOP,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type,x-csrftoken,idempotency-key",
    )
    assert "Access-Control-Allow-Origin" not in preflight
    read = client.get(path, HTTP_ORIGIN=SHOP)
    assert "Access-Control-Allow-Origin" not in read
    # The storefront's own endpoints keep their grant.
    assert client.get("/api/v1/products", HTTP_ORIGIN=SHOP)["Access-Control-Allow-Origin"] == SHOP
