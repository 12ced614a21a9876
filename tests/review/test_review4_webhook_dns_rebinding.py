"""SSRF by DNS rebinding: the URL policy resolves the host and checks the addresses,
then `requests` resolves the name again to connect. A name that answers a public
address to the check and 127.0.0.1 (or 169.254.169.254) to the connect gets the worker
to POST, signed, into the shop's own network. The DNS answers are scripted (an
attacker's name server does exactly this with TTL 0); the code under test is real."""

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from djangomart.notify.webhooks.models import WebhookDelivery, WebhookEndpoint
from djangomart.notify.webhooks.services import webhook_delivery_send
from tests.notify.webhooks.test_deliveries import paid

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_settings", "demo_catalog")]

PUBLIC = "93.184.216.34"
HOST = "rebind.attacker.example"


@pytest.fixture
def internal_service() -> Iterator[tuple[int, list[bytes]]]:
    """A service on loopback that records whatever reaches it."""
    got: list[bytes] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(10)

    def accept() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conn.settimeout(3)
        try:
            got.append(conn.recv(4096))
        except OSError:
            got.append(b"")
        conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1], got
    listener.close()
    thread.join(5)


def test_the_worker_never_connects_to_a_loopback_address_via_dns_rebinding(
    client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch, internal_service: Any
) -> None:
    port, got = internal_service
    real = socket.getaddrinfo
    answers = {"n": 0}

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host != HOST:
            return real(host, *args, **kwargs)
        answers["n"] += 1
        address = PUBLIC if answers["n"] <= 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    settings.OUTBOUND_WEBHOOK_ALLOW_PRIVATE = False
    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    # Saved when the name pointed at a public address (the admin's check passes).
    endpoint = WebhookEndpoint(url=f"https://{HOST}:{port}/hook", event_types=["order.paid"])
    answers["n"] = -10  # the save-time check sees the public address too
    endpoint.full_clean()
    endpoint.save()
    answers["n"] = 0
    _order, event = paid(client)
    delivery = WebhookDelivery.objects.get(event=event)

    webhook_delivery_send(delivery_id=delivery.pk)

    # The attempt-time check saw PUBLIC; the connection must not go to 127.0.0.1.
    assert got == [], f"the worker connected to 127.0.0.1:{port} and sent {got[0][:16]!r}"
