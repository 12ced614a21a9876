"""Rate limits of DjangoMart's own endpoints (allauth limits its own: login, signup,
password reset), counted per client in the shared cache (settings.CACHES: the database
cache on the project's PostgreSQL, or Redis), so that a limit holds across every
gunicorn worker and machine.

A limit is "N/s", "N/m" or "N/h" (settings.RATE_LIMIT_*): at most N requests of that
scope per client in each fixed window of that length. The client is the logged-in
customer, else the client address (settings.PROXY_HOPS says how many proxies' entries to
skip in X-Forwarded-For). With Redis each count is one atomic INCR; the database cache's
`incr` reads then writes, so requests of one client at the very same instant may pass
a few over the limit (never a lost refusal of a later window)."""

import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, JsonResponse

from djangomart.core.errors import DomainError

_UNITS = {"s": 1, "m": 60, "h": 3600}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([smh])\s*$")


@dataclass(frozen=True)
class Rate:
    requests: int
    seconds: int


def rate_parse(text: str) -> Rate:
    match = _RATE.match(text)
    if match is None or int(match.group(1)) < 1:
        raise ImproperlyConfigured(f"A rate limit is N/s, N/m or N/h with N >= 1, not {text!r}.")
    return Rate(int(match.group(1)), _UNITS[match.group(2)])


class RateLimited(DomainError):
    status = 429
    code = "rate_limited"
    default_message = "Too many requests; retry after the number of seconds in Retry-After."

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = retry_after

    def as_response(self) -> JsonResponse:
        response = super().as_response()
        response["Retry-After"] = str(self.retry_after)
        return response


def client_key(request: HttpRequest, customer_id: int | None) -> str:
    """Whom a limit counts: the customer, else the client's address."""
    if customer_id is not None:
        return f"customer:{customer_id}"
    address = request.META.get("REMOTE_ADDR") or "unknown"
    if settings.PROXY_HOPS:
        forwarded = [
            part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        ]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= settings.PROXY_HOPS:
            address = forwarded[-settings.PROXY_HOPS]
    return f"address:{address[:64]}"


def rate_limit_take(scope: str, rate: str, request: HttpRequest, customer_id: int | None) -> None:
    """Counts one request of `scope` for the client; RateLimited (429, with Retry-After)
    when the client is over `rate` in the current window."""
    limit = rate_parse(rate)
    now = time.time()
    window = int(now // limit.seconds)
    key = f"ratelimit:{scope}:{client_key(request, customer_id)}:{window}"
    # The window's first request creates the counter (add is atomic on every backend).
    if cache.add(key, 1, timeout=limit.seconds + 1):
        count = 1
    else:
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr: a new window
            cache.add(key, 1, timeout=limit.seconds + 1)
            count = 1
    if count > limit.requests:
        raise RateLimited(retry_after=max(1, int((window + 1) * limit.seconds - now) + 1))
