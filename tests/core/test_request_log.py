"""One JSON log line per request, with a request id also returned in X-Request-ID."""

import json
import logging
import sys

import pytest
from django.test import Client

from djangomart.core.logging import JsonFormatter


def request_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "djangomart.request"]


def test_each_request_gets_an_id_and_one_json_log_line(client: Client, caplog) -> None:
    caplog.set_level(logging.INFO, logger="djangomart.request")
    response = client.get("/healthz")
    request_id = response["X-Request-ID"]
    assert len(request_id) == 32
    [record] = request_records(caplog)
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == request_id
    assert line["method"] == "GET"
    assert line["path"] == "/healthz"
    assert line["status"] == 200
    assert line["duration_ms"] >= 0
    assert line["level"] == "INFO"
    assert line["time"].endswith("+00:00")


def test_ids_differ_between_requests(client: Client) -> None:
    assert client.get("/healthz")["X-Request-ID"] != client.get("/healthz")["X-Request-ID"]


def test_an_upstream_request_id_is_kept(client: Client) -> None:
    response = client.get("/healthz", HTTP_X_REQUEST_ID="lb-1234.abc")
    assert response["X-Request-ID"] == "lb-1234.abc"


def test_an_unsafe_upstream_request_id_is_replaced(client: Client, caplog) -> None:
    caplog.set_level(logging.INFO, logger="djangomart.request")
    response = client.get("/healthz", HTTP_X_REQUEST_ID='x" \n{"fake": 1}')
    assert response["X-Request-ID"] != 'x" \n{"fake": 1}'
    assert len(response["X-Request-ID"]) == 32


@pytest.mark.django_db
def test_errors_are_logged_with_their_status(client: Client, caplog) -> None:
    caplog.set_level(logging.INFO, logger="djangomart.request")
    client.get("/api/v1/products/missing")
    [record] = request_records(caplog)
    assert record.status == 404  # type: ignore[attr-defined]


def test_log_lines_carry_exceptions_as_text() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("x", logging.ERROR, "f", 1, "failed", (), exc_info)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "failed"
    assert "ValueError: boom" in line["exc_info"]


def test_log_lines_carry_a_requested_stack_as_text() -> None:
    record = logging.LogRecord("x", logging.WARNING, "f", 1, "where", (), None)
    record.stack_info = 'Stack (most recent call last):\n  File "f", line 1, in g'
    line = json.loads(JsonFormatter().format(record))
    assert line["stack_info"].startswith("Stack (most recent call last):")
