"""A receiver that accepts a delivery with a 2xx whose answer contains a NUL byte (any
binary body): the attempt's log row cannot be stored (PostgreSQL text holds no NUL), so
_attempt_record raises, the delivery stays `pending` under its claim and is POSTed again
after the lease: an event the receiver accepted is sent again and again, never logged."""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import Client

from djangomart.notify.webhooks.models import WebhookAttempt, WebhookDelivery
from djangomart.notify.webhooks.services import webhook_delivery_send
from tests.notify.webhooks.conftest import endpoint_make
from tests.notify.webhooks.test_deliveries import paid

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_settings", "demo_catalog")]


@pytest.fixture
def binary_receiver() -> Iterator[tuple[str, list[bytes]]]:
    seen: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.rfile.read(int(self.headers["Content-Length"])))
            answer = b"ok\x00"
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", seen
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _private_ok(settings: Any) -> None:
    settings.OUTBOUND_WEBHOOK_ALLOW_PRIVATE = True


def test_a_2xx_answer_with_a_nul_byte_is_recorded_as_delivered(
    client: Client, binary_receiver: tuple[str, list[bytes]]
) -> None:
    url, seen = binary_receiver
    endpoint_make(url, "order.paid")
    _order, event = paid(client)
    delivery = WebhookDelivery.objects.get(event=event)

    outcome = webhook_delivery_send(delivery_id=delivery.pk)

    assert len(seen) == 1  # the receiver accepted it
    assert outcome == "delivered"
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DELIVERED
    assert WebhookAttempt.objects.filter(delivery=delivery).count() == 1
