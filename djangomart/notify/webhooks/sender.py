"""One POST to a receiver, bounded in time, with what came of it. No database here: a
receiver that is slow holds only the outbound_webhooks worker's thread that sends."""

import time
from dataclasses import dataclass

import requests
from django.conf import settings

from djangomart.notify.webhooks.url_policy import UrlRefused, endpoint_url_check

USER_AGENT = "DjangoMart-Webhooks/1.0"
RESPONSE_BODY_LIMIT = 4096  # characters of the answer kept in the attempt log


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    error: str
    body: str
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def webhook_post(*, url: str, body: bytes, headers: dict[str, str]) -> Answer:
    """POSTs `body`; never raises for what the receiver or the network does (a refused
    URL, a timeout, a reset connection are an Answer with its `error`). Redirects are
    not followed: a 3xx is a failed attempt, like any other non-2xx."""
    started = time.monotonic()
    timeout = (settings.OUTBOUND_WEBHOOK_CONNECT_TIMEOUT, settings.OUTBOUND_WEBHOOK_READ_TIMEOUT)
    try:
        # Again at each attempt: what the name resolves to may have changed since the
        # endpoint was saved.
        endpoint_url_check(url)
        with requests.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
            timeout=timeout,
            allow_redirects=False,
            stream=True,  # read no more of the answer than the log keeps
        ) as response:
            content = next(response.iter_content(RESPONSE_BODY_LIMIT), b"")
            return Answer(
                status_code=response.status_code,
                error="",
                body=content.decode("utf-8", errors="replace")[:RESPONSE_BODY_LIMIT],
                duration_ms=_since(started),
            )
    except UrlRefused as exc:
        error = f"URL refused: {exc}"
    except requests.Timeout as exc:
        error = f"timeout: {exc}"
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"
    return Answer(status_code=None, error=error[:2000], body="", duration_ms=_since(started))


def _since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
