"""The payment tests' Stripe fixtures (the offline sandbox, a proxy in front of it), for
the metrics tests that count Stripe calls (tests/core/test_metrics_flows.py)."""

from tests.payments.conftest import sandbox, stripe_proxy, stripe_settings

__all__ = ["sandbox", "stripe_proxy", "stripe_settings"]
