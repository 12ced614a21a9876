"""Fixtures for the review's proof tests: the payment engine's own (the sandbox over real
HTTP, a proxy in front of it)."""

from tests.payments.conftest import sandbox, stripe_proxy, stripe_settings

__all__ = ["sandbox", "stripe_proxy", "stripe_settings"]
