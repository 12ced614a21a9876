"""Per-client rate limits in the shared cache (djangomart.core.ratelimit): counted per
customer or client address, shared by every process (the database cache), answered
with 429 `rate_limited` and Retry-After."""

import threading
import uuid
from typing import Any

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import Client, RequestFactory

from djangomart.core.ratelimit import Rate, RateLimited, client_key, rate_limit_take, rate_parse
from tests.accounts.helpers import app_login, customer_create
from tests.payments.builders import order_build
from tests.payments.conftest import sandbox, stripe_settings
from tests.stripe_sandbox.harness import SandboxServer

__all__ = ["sandbox", "stripe_settings"]


def test_rates_are_parsed_and_nonsense_refused() -> None:
    assert rate_parse("30/m") == Rate(30, 60)
    assert rate_parse(" 5 / s ") == Rate(5, 1)
    assert rate_parse("1000/h") == Rate(1000, 3600)
    for bad in ("", "0/m", "ten/m", "5/d", "5", "-1/m"):
        with pytest.raises(ImproperlyConfigured):
            rate_parse(bad)


def test_the_client_is_the_customer_else_the_address_behind_the_configured_proxies(
    settings: Any,
) -> None:
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9"
    )
    assert client_key(request, 42) == "customer:42"
    settings.PROXY_HOPS = 0
    assert client_key(request, None) == "address:10.0.0.1"  # the header is anyone's to forge
    settings.PROXY_HOPS = 1
    assert client_key(request, None) == "address:203.0.113.9"  # what our proxy appended


@pytest.mark.django_db
def test_over_the_limit_is_refused_until_the_window_ends() -> None:
    request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.1")
    for _ in range(3):
        rate_limit_take("test", "3/h", request, None)
    with pytest.raises(RateLimited) as refused:
        rate_limit_take("test", "3/h", request, None)
    assert 1 <= refused.value.retry_after <= 3601
    response = refused.value.as_response()
    assert response.status_code == 429
    assert response["Retry-After"] == str(refused.value.retry_after)
    # Another client, another scope: counted apart.
    rate_limit_take("test", "3/h", RequestFactory().get("/", REMOTE_ADDR="192.0.2.2"), None)
    rate_limit_take("other", "3/h", request, None)


@pytest.mark.django_db(transaction=True)
def test_the_count_is_shared_by_every_connection_as_by_every_worker() -> None:
    """Each thread has its own database connection, as each gunicorn worker has: the
    limit counts them all together."""
    assert connection.vendor == "postgresql"
    scope = f"shared-{uuid.uuid4()}"
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def client_requests() -> None:
        request = RequestFactory().get("/", REMOTE_ADDR="198.51.100.7")
        barrier.wait()
        for _ in range(5):
            try:
                rate_limit_take(scope, "10/h", request, None)
                outcomes.append("ok")
            except RateLimited:
                outcomes.append("limited")
        connection.close()

    threads = [threading.Thread(target=client_requests) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 20 requests against 10, counted atomically (Django's DatabaseCache.incr read then
    # wrote, and let all 20 through).
    assert (outcomes.count("ok"), outcomes.count("limited")) == (10, 10)


@pytest.mark.django_db
def test_checkout_is_limited_per_client_with_a_json_429(client: Client, settings: Any) -> None:
    settings.RATE_LIMIT_CHECKOUT = "2/h"
    body = {"email": "ada@example.com", "lines": [{"sku": "NO-SUCH-SKU", "quantity": 1}]}
    statuses = [
        client.post("/api/v1/checkout", body, content_type="application/json").status_code
        for _ in range(3)
    ]
    assert statuses == [404, 404, 429]
    refused = client.post("/api/v1/checkout", body, content_type="application/json")
    assert refused.json()["code"] == "rate_limited"
    assert int(refused["Retry-After"]) >= 1
    # A logged-in customer is counted as themselves, not by the shared address.
    customer_create("ada@example.com")
    token = app_login(Client(), "ada@example.com")
    mine = client.post(
        "/api/v1/checkout", body, content_type="application/json", HTTP_X_SESSION_TOKEN=token
    )
    assert mine.status_code == 404


@pytest.mark.django_db
def test_order_sync_is_limited_per_client(
    client: Client, settings: Any, demo_catalog: None, sandbox: SandboxServer
) -> None:
    settings.RATE_LIMIT_ORDER_SYNC = "1/h"
    order = order_build()
    cache.clear()
    path = f"/api/v1/orders/{order.pk}/sync"
    first = client.post(path, HTTP_X_ORDER_TOKEN=order.access_token)
    assert first.status_code != 429
    second = client.post(path, HTTP_X_ORDER_TOKEN=order.access_token)
    assert (second.status_code, second.json()["code"]) == (429, "rate_limited")


def test_on_redis_the_count_is_redis_incr(settings: Any) -> None:
    """REDIS_URL's backend: the same limit through Django's RedisCache (skipped on a
    machine without a Redis server; `make test` needs none)."""
    redis = pytest.importorskip("redis")
    try:
        redis.Redis(host="127.0.0.1", socket_connect_timeout=0.5).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("no Redis server on 127.0.0.1:6379")
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/15",
        }
    }
    from django.core.cache import caches

    assert type(caches["default"]).__name__ == "RedisCache"
    request = RequestFactory().get("/", REMOTE_ADDR="198.51.100.8")
    scope = f"redis-{uuid.uuid4()}"
    for _ in range(2):
        rate_limit_take(scope, "2/h", request, None)
    with pytest.raises(RateLimited):
        rate_limit_take(scope, "2/h", request, None)
