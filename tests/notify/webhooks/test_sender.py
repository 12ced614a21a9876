"""The sender's connections against real servers on 127.0.0.1: an attempt connects to
the addresses the URL policy checked and never looks the name up again, while the name
stays the Host header, the TLS SNI and what the certificate is verified for; and an
attempt ends at OUTBOUND_WEBHOOK_TOTAL_TIMEOUT however slowly the receiver trickles its
answer, the connection closed."""

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from djangomart.notify.webhooks.models import WebhookDelivery
from djangomart.notify.webhooks.sender import webhook_post_to
from djangomart.notify.webhooks.services import webhook_delivery_send
from tests.notify.webhooks.conftest import endpoint_make
from tests.notify.webhooks.receivers import TLSReceiver, TricklingReceiver, tls_files
from tests.notify.webhooks.test_deliveries import paid
from tests.test_settings import manage

HOST = "hooks.example.test"  # .test: never resolves anywhere


@pytest.fixture
def tls_receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TLSReceiver]:
    """A TLS receiver whose certificate, for HOST, requests trusts (REQUESTS_CA_BUNDLE:
    certificate verification itself stays on)."""
    ca, cert, key = tls_files(tmp_path, HOST)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    server = TLSReceiver(cert=cert, key=key).start()
    yield server
    server.stop()


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every name looked up by DNS (socket.getaddrinfo), recorded."""
    names: list[Any] = []
    real = socket.getaddrinfo

    def recording(host: Any, *args: Any, **kwargs: Any) -> Any:
        names.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    return names


def post(url: str, addresses: tuple[str, ...] | None) -> Any:
    return webhook_post_to(url=url, addresses=addresses, body=b"{}", headers={})


def test_an_attempt_connects_to_the_checked_address_with_the_name_for_host_sni_and_tls(
    tls_receiver: TLSReceiver, lookups: list[Any]
) -> None:
    url = f"https://{HOST}:{tls_receiver.port}/hook"

    answer = post(url, ("127.0.0.1",))

    assert (answer.status_code, answer.error, answer.body) == (200, "", "ok")
    assert HOST not in lookups  # connected to the address given, never to a new lookup's
    assert tls_receiver.hosts == [f"{HOST}:{tls_receiver.port}"]
    assert tls_receiver.server_names == [HOST]


def test_the_certificate_is_still_verified_for_the_name(
    tls_receiver: TLSReceiver,
) -> None:
    # The same server, reached under a name its certificate is not for.
    answer = post(f"https://other.example.test:{tls_receiver.port}/hook", ("127.0.0.1",))

    assert answer.status_code is None
    assert answer.error.startswith("SSLError"), answer.error
    assert "other.example.test" in answer.error or "certificate" in answer.error
    assert tls_receiver.hosts == []  # no request was sent


def test_an_attempt_tries_the_next_checked_address_when_one_refuses(
    tls_receiver: TLSReceiver,
) -> None:
    # Nothing listens on ::1 at that port (or there is no IPv6): refused, then IPv4.
    answer = post(f"https://{HOST}:{tls_receiver.port}/hook", ("::1", "127.0.0.1"))

    assert answer.status_code == 200, answer.error


@pytest.mark.django_db
@pytest.mark.usefixtures("stripe_settings", "demo_catalog")
@pytest.mark.parametrize(
    "head_first",
    [
        pytest.param(False, id="the status line trickled"),
        # A body that ends when the connection does: cut short by the deadline, what
        # came of it looks complete, yet it is no answer.
        pytest.param(True, id="a 200 head, then its body trickled"),
    ],
)
def test_a_receiver_trickling_its_answer_fails_the_attempt_at_the_total_timeout(
    client: Client, settings: Any, head_first: bool
) -> None:
    settings.OUTBOUND_WEBHOOK_TOTAL_TIMEOUT = 1.0
    settings.OUTBOUND_WEBHOOK_READ_TIMEOUT = 10.0  # a byte every 0.2 s never trips it
    trickler = TricklingReceiver(head_first=head_first, interval=0.2, length=60)  # 12 s
    try:
        endpoint_make(trickler.url, "order.paid")
        _order, event = paid(client)
        delivery = WebhookDelivery.objects.get(event=event)

        started = time.monotonic()
        outcome = webhook_delivery_send(delivery_id=delivery.pk)
        took = time.monotonic() - started

        assert trickler.first_byte_at is not None, "the receiver was to start answering"
        assert outcome == "failed"
        assert took < 3.0, f"the attempt took {took:.1f} s"
        attempt = delivery.log.get()
        assert (attempt.delivered, attempt.status_code) == (False, None)
        assert attempt.error.startswith("timeout: "), attempt.error
        assert "OUTBOUND_WEBHOOK_TOTAL_TIMEOUT" in attempt.error
        assert attempt.duration_ms < 3000
        # The connection was closed then: the receiver saw it, long before its 12 s.
        deadline = time.monotonic() + 2
        while trickler.closed_at is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert trickler.closed_at is not None
        assert trickler.closed_at - started < 3.0
    finally:
        trickler.stop()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OUTBOUND_WEBHOOK_TOTAL_TIMEOUT": "0"}, "at least OUTBOUND_WEBHOOK_CONNECT_TIMEOUT"),
        (
            {"OUTBOUND_WEBHOOK_TOTAL_TIMEOUT": "5", "OUTBOUND_WEBHOOK_CONNECT_TIMEOUT": "10"},
            "at least OUTBOUND_WEBHOOK_CONNECT_TIMEOUT",
        ),
        ({"OUTBOUND_WEBHOOK_TOTAL_TIMEOUT": "600"}, "at most 240 seconds"),
    ],
)
def test_a_total_timeout_shorter_than_the_connect_timeout_or_the_claim_refuses_to_start(
    env: dict[str, str], message: str
) -> None:
    result = manage("check", DEBUG="1", **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr
