"""The WSGI application gunicorn serves (djangomart.wsgi) runs POST /webhooks/stripe
through settings.WEBHOOK_MIDDLEWARE only, and every other path through the full stack.
Called as gunicorn calls it: a WSGI environ in, status and headers out."""

import io
import json
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from django.core import signals
from django.db import close_old_connections

from djangomart.core.wsgi_routes import MiddlewareSubsetHandler
from djangomart.payments.models import StripeEvent
from djangomart.wsgi import application
from tests.payments.conftest import event_json, sign

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_settings")]


def call(
    method: str, path: str, body: bytes = b"", *, app: Any = application, **headers: str
) -> tuple[str, dict[str, str], bytes]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": headers.pop("query", ""),
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "HTTP_HOST": headers.pop("host", "localhost"),
        **{f"HTTP_{name.upper()}": value for name, value in headers.items()},
    }
    setup_testing_defaults(environ)
    answer: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], *_: Any) -> None:
        answer["status"], answer["headers"] = status, dict(response_headers)

    # As Django's test client does: the test's connection (and its transaction) must
    # survive the request_started and request_finished signals.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        chunks = app(environ, start_response)
        content = b"".join(chunks)
        getattr(chunks, "close", lambda: None)()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    return answer["status"], answer["headers"], content


def test_the_webhook_is_acknowledged_without_the_browser_middleware() -> None:
    payload = event_json("customer.created", {"id": "cus_test_route", "object": "customer"})
    status, headers, content = call(
        "POST", "/webhooks/stripe", payload.encode(), stripe_signature=sign(payload)
    )
    assert status.startswith("200"), content
    assert json.loads(content) == {"received": True, "duplicate": False}
    assert StripeEvent.objects.filter(pk=json.loads(payload)["id"]).exists()
    # Neither the request log (the inbox row is the record), clickjacking, sessions nor
    # CSRF touched it; SecurityMiddleware did.
    assert "X-Request-ID" not in headers
    assert "X-Frame-Options" not in headers
    assert "Cookie" not in headers.get("Vary", "")
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_every_other_path_keeps_the_full_stack() -> None:
    status, headers, _ = call("GET", "/healthz")
    assert status.startswith("200")
    assert headers["X-Frame-Options"] == "DENY"
    assert "X-Request-ID" in headers


def test_the_webhook_route_still_answers_json_errors_and_refuses_nul() -> None:
    status, _, content = call("GET", "/webhooks/stripe")
    assert status.startswith("405")
    assert json.loads(content)["code"] == "method_not_allowed"
    status, _, content = call("POST", "/webhooks/stripe", b"{}", query="x=%00")
    assert status.startswith("400")
    assert json.loads(content)["code"] == "bad_request"
    status, _, content = call("POST", "/webhooks/stripe", b"{}", stripe_signature="t=1,v1=00")
    assert status.startswith("400")
    assert json.loads(content)["code"] == "invalid_signature"


def test_the_webhook_route_checks_the_host_and_redirects_plain_http(settings: Any) -> None:
    payload = event_json("customer.created", {"id": "cus_test_host", "object": "customer"})
    status, _, content = call(
        "POST", "/webhooks/stripe", payload.encode(), stripe_signature=sign(payload),
        host="evil.example",
    )  # fmt: skip
    assert status.startswith("400"), content
    assert not StripeEvent.objects.exists()
    # Production's setting (DEBUG=0), read when the handler is built, as at start.
    settings.SECURE_SSL_REDIRECT = True
    production = MiddlewareSubsetHandler(settings.WEBHOOK_MIDDLEWARE)
    status, headers, _ = call("POST", "/webhooks/stripe", payload.encode(), app=production)
    assert status.startswith("301")
    assert headers["Location"].startswith("https://")
    assert not StripeEvent.objects.exists()
