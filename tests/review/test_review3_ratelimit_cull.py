"""Review 3: a client's rate-limit count must survive the shared cache's housekeeping.
Django's DatabaseCache holds MAX_ENTRIES rows (300 unless configured) and, on any
cache.set() once it holds more (allauth writes its own login and signup counters with
cache.set), deletes a third of all rows in key order, live ones included: with a few
hundred clients counted in one window (every client and scope is a row), one such write
reset the counters of a third of them, letting a client that was over its limit in
again."""

import pytest
from django.core.cache import cache
from django.http import HttpRequest
from django.test import RequestFactory

from djangomart.core.ratelimit import RateLimited, rate_limit_take

pytestmark = pytest.mark.django_db


def _request(address: str) -> HttpRequest:
    return RequestFactory().get("/", REMOTE_ADDR=address)


def test_a_client_over_its_limit_stays_refused_after_the_cache_culls() -> None:
    heavy = _request("10.0.0.1")
    for _ in range(2):
        rate_limit_take("review3", "2/h", heavy, None)
    with pytest.raises(RateLimited):
        rate_limit_take("review3", "2/h", heavy, None)

    # A busy hour: 400 other clients counted once each.
    for n in range(400):
        rate_limit_take("review3", "2/h", _request(f"10.1.{n // 250}.{n % 250}"), None)
    cache.set("allauth-like-counter", 1)  # what allauth's own rate limits do

    with pytest.raises(RateLimited):
        rate_limit_take("review3", "2/h", heavy, None)
