"""The payment engine's fixtures (tests/payments/conftest.py), for the review tests."""

from tests.payments.conftest import (  # noqa: F401 (fixtures)
    catalog,
    queued_jobs_removed,
    sandbox,
    stripe_proxy,
    stripe_settings,
)
