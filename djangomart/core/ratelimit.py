"""Rate limits of DjangoMart's own endpoints (allauth limits its own: login, signup,
password reset), counted per client in the shared cache (settings.CACHES: the database
cache on the project's PostgreSQL, or Redis), so that a limit holds across every
gunicorn worker and machine.

A limit is "N/s", "N/m" or "N/h" (settings.RATE_LIMIT_*): at most N requests of that
scope per client in each fixed window of that length. The client is the logged-in
customer, else the client address (settings.PROXY_HOPS says how many proxies' entries to
skip in X-Forwarded-For). Each count is one atomic step whatever the backend: Redis's
INCR, or on the database cache one upsert of the counter's row in the cache's own table
(Django's DatabaseCache.incr reads and then writes, and loses most counts when one
client's requests arrive together: tests/core/test_ratelimit.py)."""

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
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
    expires = (window + 1) * limit.seconds
    count = _count(key, expires)
    if count > limit.requests:
        raise RateLimited(retry_after=max(1, int(expires - now) + 1))


# The counter's row in DatabaseCache's table, under a key no cache.get() ever reads (its
# value is a plain number, not the cache's pickle). An expired row (a window that ended,
# not yet culled) starts again at 1.
_UPSERT = """
INSERT INTO {table} (cache_key, value, expires) VALUES (%s, '1', %s)
ON CONFLICT (cache_key) DO UPDATE SET
    value = CASE WHEN {table}.expires < now() THEN '1'
                 ELSE ({table}.value::bigint + 1)::text END,
    expires = CASE WHEN {table}.expires < now() THEN EXCLUDED.expires
                   ELSE {table}.expires END
RETURNING value::bigint
"""


def _count(key: str, expires: float) -> int:
    """This request's number in its window, counted atomically."""
    cache = caches["default"]
    if isinstance(cache, DatabaseCache):
        # DatabaseCache keeps its table's name private; it is settings.CACHES' LOCATION.
        table = connection.ops.quote_name(settings.CACHES["default"]["LOCATION"])
        with connection.cursor() as cursor:
            cursor.execute(
                _UPSERT.format(table=table),
                [f"djangomart:{key}", datetime.fromtimestamp(expires, UTC)],
            )
            row = cursor.fetchone()
        return int(row[0])
    timeout = max(1, int(expires - time.time()) + 1)
    # add is atomic on every backend; on Redis incr is INCR.
    if cache.add(key, 1, timeout=timeout):
        return 1
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr: the next window's first
        cache.add(key, 1, timeout=timeout)
        return 1
