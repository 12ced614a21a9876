"""Fixtures for outbound webhooks: receivers on 127.0.0.1, endpoints, paid orders."""

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from djangomart.notify.webhooks.models import WebhookEndpoint
from tests.notify.webhooks.receivers import HangingReceiver, Receiver
from tests.orders.conftest import goods
from tests.payments.conftest import queued_jobs_removed, sandbox, stripe_settings

__all__ = ["goods", "queued_jobs_removed", "sandbox", "stripe_settings"]

DOC = Path(__file__).resolve().parents[3] / "docs" / "webhooks-outbound.md"


@pytest.fixture(autouse=True)
def _webhook_settings(settings: Any) -> None:
    # The receivers are on 127.0.0.1 over http, as in development.
    settings.OUTBOUND_WEBHOOK_ALLOW_PRIVATE = True


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(
        failures: int = 0, on_request: Callable[[], None] | None = None, **options: Any
    ) -> Receiver:
        started.append(Receiver(failures=failures, on_request=on_request, **options).start())
        return started[-1]

    yield start
    for r in started:
        r.stop()


@pytest.fixture
def hanging_receiver() -> Iterator[HangingReceiver]:
    server = HangingReceiver()
    yield server
    server.stop()


def endpoint_make(url: str, *types: str, enabled: bool = True) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(url=url, event_types=list(types or ["order.paid"]), enabled=enabled)
    endpoint.full_clean()
    endpoint.save()
    return endpoint


def documented_verify() -> Callable[..., bool]:
    """The verification snippet of docs/webhooks-outbound.md, executed as printed."""
    section = DOC.read_text().split("## Verifying the signature", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1), str(DOC), "exec"), namespace)  # noqa: S102 - our own doc
    return namespace["verify_signature"]  # type: ignore[no-any-return]
