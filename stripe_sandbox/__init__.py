"""An offline, Stripe-compatible server for development, demos and tests.

Speaks enough of Stripe's REST API (form-encoded requests, Stripe's JSON objects and
errors, idempotency keys) for the official SDK, hosts a Checkout page with test
cards, signs and delivers webhooks exactly as Stripe does, and misbehaves on
purpose (duplicates, reordering, delays, failures, outages) so that the shop is
tested against what the real network does. DjangoMart never imports it.
"""

API_VERSION = "2026-10-28.endive"
