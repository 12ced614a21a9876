"""The payment engine's fixtures (the sandbox over HTTP, signed events) for the review tests."""

from tests.payments.conftest import (  # noqa: F401
    catalog,
    queued_jobs_removed,
    sandbox,
    stripe_proxy,
    stripe_settings,
)
