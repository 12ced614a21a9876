"""Every error is JSON {"code", "message"} with the right status, never an HTML page."""

import json

import pytest
from django.test import Client, override_settings

from djangomart.core.errors import server_error

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/nothing-here", "/api/v1/nothing", "/api/v2/products"])
def test_unknown_routes_are_json_404s(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_found"


@override_settings(DEBUG=True)
def test_unknown_routes_are_json_even_with_debug_on(client: Client) -> None:
    response = client.get("/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_a_bad_host_header_is_a_json_400(client: Client) -> None:
    response = client.get("/api/v1/products", HTTP_HOST="evil.example.com")
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"


def test_server_errors_are_json_and_say_nothing_internal(rf) -> None:
    response = server_error(rf.get("/"))
    assert response.status_code == 500
    assert json.loads(response.content) == {
        "code": "internal_error",
        "message": "Internal error; it has been logged.",
    }
