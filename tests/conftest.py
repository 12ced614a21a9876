import os
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from hypothesis import settings as hypothesis_settings

from djangomart.catalog.demo import demo_catalog_seed
from djangomart.catalog.models import Category, Product, StockMovement, Variant
from djangomart.catalog.services import variant_stock_change
from tests.ci import CI, pytest_configure, pytest_make_collect_report, pytest_runtest_makereport

__all__ = ["pytest_configure", "pytest_make_collect_report", "pytest_runtest_makereport"]

# Property tests (tests/payments/test_properties.py): a quick sample on a laptop, a wider
# one in CI, where every run explores new cases. HYPOTHESIS_PROFILE picks one by name.
hypothesis_settings.register_profile("dev", max_examples=12)
hypothesis_settings.register_profile("ci", max_examples=50)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if CI else "dev"))


@pytest.fixture(autouse=True)
def _test_settings(request: pytest.FixtureRequest, settings: Any, django_db_blocker: Any) -> Any:
    """Rate limits out of the way of tests that are not about them (they set their own),
    a fast password hasher, and the shared cache emptied after a test that committed to
    it: the cache's table is not a model's, so a transactional test's flush leaves it."""
    settings.RATE_LIMIT_CHECKOUT = settings.RATE_LIMIT_CART_WRITE = "100000/m"
    settings.RATE_LIMIT_ORDER_SYNC = "100000/m"
    # Password hashing is not under test (PBKDF2 costs about a second per login here).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    yield
    marker = request.node.get_closest_marker("django_db")
    if (marker is not None and marker.kwargs.get("transaction")) or (
        "transactional_db" in request.fixturenames or "live_server" in request.fixturenames
    ):
        from django.core.cache import cache

        with django_db_blocker.unblock():
            cache.clear()


@pytest.fixture
def demo_catalog(db: None) -> None:
    demo_catalog_seed()


@pytest.fixture
def api() -> Client:
    return Client()


@pytest.fixture
def staff_client(db: None) -> Client:
    user = User.objects.create_user("staff", "staff@example.com", "pw-for-tests", is_staff=True)
    user.is_superuser = True
    user.save()
    client = Client()
    client.force_login(user)
    return client


def make_product(
    slug: str,
    *,
    category: Category | None = None,
    active: bool = True,
    variants: list[tuple[str, int, int]] | None = None,
) -> Product:
    """A product with variants given as (sku, price, stock), in that order (`position`);
    stock is on hand, recorded as a restock in the stock ledger."""
    category = category or Category.objects.get_or_create(slug="misc", defaults={"name": "Misc"})[0]
    product = Product.objects.create(
        name=slug.replace("-", " ").title(), slug=slug, category=category, active=active
    )
    for position, (sku, price, stock) in enumerate(variants or []):
        variant = Variant.objects.create(product=product, sku=sku, price=price, position=position)
        if stock:
            variant_stock_change(
                variant_id=variant.pk, delta=stock, reason=StockMovement.Reason.RESTOCK
            )
    return product


def database_url(params: dict[str, Any], name: str) -> str:
    """A DATABASE_URL for database `name` on the test run's server, for a subprocess:
    `params` are connection.get_connection_params() (as the test run connected, the
    embedded PostgreSQL's unix socket and port included)."""
    user = params.get("user") or "postgres"
    host = str(params.get("host") or "127.0.0.1")
    port = params.get("port") or 5432
    if host.startswith("/"):  # the embedded PostgreSQL: a unix socket directory
        return f"postgres://{user}@/{name}?host={host}&port={port}"
    return f"postgres://{user}@{host}:{port}/{name}"


@pytest.fixture
def scratch_database_url(django_db_blocker) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    with django_db_blocker.unblock():
        params = connection.get_connection_params()
    name = f"djangomart_scratch_{uuid.uuid4().hex[:8]}"
    admin = {k: v for k, v in params.items() if k in {"host", "port", "user", "password"}}
    with psycopg.connect(dbname="postgres", autocommit=True, **admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield database_url(params, name)
    with psycopg.connect(dbname="postgres", autocommit=True, **admin) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
