"""Bad input is a 4xx with a JSON body that names what is wrong, never a database error:
NUL characters anywhere, malformed URLs, and the shape of validation errors."""

import re
from typing import Any

import pytest
from django.test import Client

from djangomart.orders.models import Order
from tests.orders.conftest import checkout_body, checkout_post, goods
from tests.payments.conftest import sandbox, stripe_settings
from tests.stripe_sandbox.harness import SandboxServer

__all__ = ["goods", "sandbox", "stripe_settings"]

pytestmark = pytest.mark.django_db

A_KEY = "nul-tests-key-0123456789"


def assert_refused(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


# -- NUL characters -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/products", {"q": "\x00"}),
        ("/api/v1/products", {"q": "tee\x00"}),
        ("/api/v1/products", {"category": "\x00"}),
        ("/api/v1/products", {"ordering": "name\x00"}),
        ("/api/v1/products", {"unknown": "\x00"}),
        ("/api/v1/products/%00", {}),
        ("/api/v1/products/classic-tee%00", {}),
        ("/api/v1/categories", {"x": "\x00"}),
        ("/admin/login/", {"next": "\x00"}),
    ],
)
def test_a_nul_in_the_path_or_the_query_is_a_json_4xx(
    client: Client, goods: None, path: str, params: dict[str, str]
) -> None:
    response = client.get(path, params)
    assert response.status_code in (400, 422), response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] in ("bad_request", "validation_error")


@pytest.mark.parametrize(
    "body",
    [
        checkout_body(email="ada\x00@example.com"),
        checkout_body(email="\x00"),
        checkout_body(lines=[{"sku": "TEE-M\x00", "quantity": 1}]),
        checkout_body(lines=[{"sku": "\x00", "quantity": 1}]),
        checkout_body(success_url="http://localhost/\x00"),
        checkout_body(cancel_url="\x00"),
    ],
    ids=["email", "email-only-nul", "sku", "sku-only-nul", "success-url", "cancel-url"],
)
def test_a_nul_in_a_json_string_is_a_422_naming_the_field(
    goods: None, sandbox: SandboxServer, client: Client, body: dict[str, Any]
) -> None:
    refused = assert_refused(checkout_post(client, body), 422, "validation_error")
    assert refused["details"]
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    ("header", "path", "method"),
    [
        ("HTTP_IDEMPOTENCY_KEY", "/api/v1/checkout", "post"),
        ("HTTP_X_ORDER_TOKEN", "/api/v1/orders/00000000-0000-0000-0000-000000000000", "get"),
        ("HTTP_X_ORDER_TOKEN", "/api/v1/orders/00000000-0000-0000-0000-000000000000/sync", "post"),
    ],
)
def test_a_nul_in_a_header_is_a_json_4xx(
    goods: None, sandbox: SandboxServer, client: Client, header: str, path: str, method: str
) -> None:
    headers: dict[str, Any] = {header: A_KEY + "\x00"}
    if method == "post":
        response = client.post(path, checkout_body(), content_type="application/json", **headers)
    else:
        response = client.get(path, **headers)
    assert response.status_code in (400, 422), response.content
    assert response["Content-Type"] == "application/json"
    assert not Order.objects.exists()


# -- Malformed URLs -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://[/x", "http://[::1/x", "https://localhost:99999/x", "https://localhost:port/x"],
)
def test_a_malformed_redirect_url_is_a_422_naming_the_field(
    goods: None, sandbox: SandboxServer, client: Client, url: str
) -> None:
    body = assert_refused(
        checkout_post(client, checkout_body(success_url=url)), 422, "validation_error"
    )
    assert [d["location"] for d in body["details"]] == ["success_url"]
    assert not Order.objects.exists()


@pytest.mark.parametrize("field", ["success_url", "cancel_url"])
def test_a_redirect_url_that_the_schema_refuses_is_refused_by_the_server(
    goods: None, sandbox: SandboxServer, client: Client, field: str
) -> None:
    """The schema's pattern refuses non-ASCII characters (clients percent-encode them),
    so the server must too: a 422 naming the field, no order."""
    schema = client.get("/api/v1/openapi.json").json()
    prop = schema["components"]["schemas"]["CheckoutIn"]["properties"][field]
    pattern = next(b["pattern"] for b in prop["anyOf"] if b.get("type") == "string")
    url = "http://localhost:3000/gr\u00fc\u00dfe"  # an allowed host, a non-ASCII path
    assert re.search(pattern, url) is None  # the schema refuses it

    body = assert_refused(
        checkout_post(client, checkout_body(**{field: url})), 422, "validation_error"
    )

    assert body["details"] == [
        {
            "location": field,
            "message": f"{field} must be an absolute http(s) URL in ASCII: percent-encode "
            "other characters.",
            "type": "url",
        }
    ]
    assert not Order.objects.exists()
    encoded = "http://localhost:3000/gr%C3%BC%C3%9Fe"  # what the client sends instead
    assert re.search(pattern, encoded) is not None
    assert checkout_post(client, checkout_body(**{field: encoded})).status_code == 201


# -- What validation errors look like -------------------------------------------------


@pytest.mark.parametrize(
    ("body", "location"),
    [
        (checkout_body(email="not-an-email"), "email"),
        (checkout_body(lines=[{"sku": "TEE-M", "quantity": 0}]), "lines.0.quantity"),
        (checkout_body(lines=[{"sku": "TEE-M", "quantity": 1}, {"sku": ""}]), "lines.1.sku"),
        (checkout_body(success_url="https://evil.example.com/x"), "success_url"),
        (checkout_body(cancel_url="/cart"), "cancel_url"),
        (checkout_body(cancel_url=""), "cancel_url"),
        (checkout_body(success_url=""), "success_url"),
    ],
)
def test_validation_errors_name_the_field_by_its_own_path(
    goods: None, sandbox: SandboxServer, client: Client, body: dict[str, Any], location: str
) -> None:
    refused = assert_refused(checkout_post(client, body), 422, "validation_error")
    assert location in [d["location"] for d in refused["details"]]
    for detail in refused["details"]:
        assert set(detail) == {"location", "message", "type"}
        assert not detail["location"].startswith("body.")
        assert not detail["message"].startswith("Value error")
    assert location in refused["message"]


def test_a_too_long_idempotency_key_names_the_header(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    refused = assert_refused(
        checkout_post(client, HTTP_IDEMPOTENCY_KEY="k" * 256), 422, "validation_error"
    )
    assert [d["location"] for d in refused["details"]] == ["header.Idempotency-Key"]


def test_a_body_that_is_not_an_object_is_a_422_with_details(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    response = client.post("/api/v1/checkout", "[1, 2]", content_type="application/json")
    refused = assert_refused(response, 422, "validation_error")
    assert refused["details"]
    assert all(d["location"] for d in refused["details"])


def test_a_body_that_is_not_json_is_a_400(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    response = client.post("/api/v1/checkout", "{", content_type="application/json")
    assert_refused(response, 400, "bad_request")


def test_merged_lines_over_the_limit_carry_details(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    lines = [{"sku": "TEE-M", "quantity": 60}, {"sku": "TEE-M", "quantity": 60}]
    refused = assert_refused(
        checkout_post(client, checkout_body(lines=lines)), 422, "validation_error"
    )
    assert [d["location"] for d in refused["details"]] == ["lines"]


# -- The schema tells the truth -------------------------------------------------------


def openapi(client: Client) -> dict[str, Any]:
    schema: dict[str, Any] = client.get("/api/v1/openapi.json").json()
    return schema


def test_every_operation_documents_the_errors_it_can_answer(client: Client, db: None) -> None:
    paths = openapi(client)["paths"]
    expected = {
        ("get", "/api/v1/categories"): {"200", "400"},
        ("get", "/api/v1/products"): {"200", "400", "422"},
        ("get", "/api/v1/products/{slug}"): {"200", "400", "404", "422"},
        ("post", "/api/v1/checkout"): {"201", "400", "403", "404", "409", "422", "502"},
        ("get", "/api/v1/orders/{order_id}"): {"200", "400", "404", "422"},
        ("post", "/api/v1/orders/{order_id}/sync"): {
            "200", "400", "403", "404", "409", "422", "502"
        },
    }  # fmt: skip
    for (method, path), statuses in expected.items():
        assert statuses <= set(paths[path][method]["responses"]), (method, path)


def test_the_schema_states_the_input_rules_the_server_enforces(client: Client, db: None) -> None:
    components = openapi(client)["components"]["schemas"]
    checkout = components["CheckoutIn"]["properties"]
    assert checkout["email"]["format"] == "email"
    assert checkout["email"]["maxLength"] == 254
    success = checkout["success_url"]["anyOf"][0]
    assert success["maxLength"] == 2000
    assert success["pattern"].startswith("^https?://(?:")
    line = components["CheckoutLineIn"]["properties"]
    assert (line["sku"]["minLength"], line["sku"]["maxLength"]) == (1, 64)
    assert "pattern" in line["sku"]
    headers = {
        p["name"]: p
        for p in openapi(client)["paths"]["/api/v1/checkout"]["post"]["parameters"]
        if p["in"] == "header"
    }
    key = headers["Idempotency-Key"]["schema"]
    assert (key["minLength"], key["maxLength"]) == (16, 255)
    assert key["pattern"] == "^[\\x21-\\x7e]+$"
    assert "secret" in headers["Idempotency-Key"]["description"]
