"""The live OpenAPI schema, fuzzed by schemathesis against the real app (WSGI in-process,
real PostgreSQL, the offline Stripe sandbox for checkout): every check on, NUL characters
generated, a fixed seed. Zero server errors and zero schema violations, as a guest and
again as a logged-in customer (the app client's X-Session-Token) for every operation
that knows customers."""

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.test import Client
from hypothesis import HealthCheck, settings

from tests.accounts.helpers import app_login, customer_create
from tests.payments.conftest import sandbox, stripe_settings
from tests.stripe_sandbox.harness import SandboxServer

__all__ = ["sandbox", "stripe_settings"]

POSITIVE_STATUSES = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 7,
        "generation": {"max-examples": 60, "allow-x00": True, "deterministic": True},
        "checks": {"enabled": True},
        "operations": [
            {
                # Two rules of checkout that JSON Schema cannot state: the same SKU on
                # several lines adds up to at most 100, and an order has one currency.
                # Both are a 422 naming `lines`; everything else is in the schema.
                "include-path": "/api/v1/checkout",
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": [*POSITIVE_STATUSES, "422"]}
                },
            }
        ],
    }
)


# The customer's own operations (`/me/...`) answer a guest 401 whatever the input: the
# logged-in run below fuzzes them, and its checks include that 401 without credentials.
schema = schemathesis.openapi.from_wsgi(
    "/api/v1/openapi.json", get_wsgi_application(), config=CONFIG
).exclude(path_regex=r"^/api/v1/me(/|$)")


@pytest.fixture
def shop(demo_catalog: None, sandbox: SandboxServer) -> None:
    pass


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@settings(suppress_health_check=list(HealthCheck), deadline=None)
def test_the_api_honours_its_schema(shop: None, case: schemathesis.Case) -> None:

    case.call_and_validate()


# What a customer reaches differently from a guest: fewer examples each, the guest run
# above covers the inputs' shapes.
CUSTOMER_CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 11,
        "generation": {"max-examples": 15, "allow-x00": True, "deterministic": True},
        "checks": {"enabled": True},
        "operations": [
            {
                # The schema states a guest's minimum length of the Idempotency-Key (16);
                # a customer's keys are scoped to them and may be shorter, by design.
                "include-path": "/api/v1/checkout",
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": [*POSITIVE_STATUSES, "422"]},
                    "negative_data_rejection": {"enabled": False},
                },
            }
        ],
    }
)
customer_schema = schemathesis.openapi.from_wsgi(
    "/api/v1/openapi.json", get_wsgi_application(), config=CUSTOMER_CONFIG
).include(path_regex=r"^/api/v1/(me|carts|checkout)")


@pytest.fixture
def customer_token(shop: None) -> str:
    customer_create("fuzz@example.com")
    return app_login(Client(), "fuzz@example.com")


@pytest.mark.django_db(transaction=True)
@customer_schema.parametrize()
@settings(suppress_health_check=list(HealthCheck), deadline=None)
def test_the_api_honours_its_schema_for_a_logged_in_customer(
    customer_token: str, case: schemathesis.Case
) -> None:
    case.call_and_validate(headers={"X-Session-Token": customer_token})
