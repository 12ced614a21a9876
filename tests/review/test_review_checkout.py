"""Review of issue 7 (section 2, honest errors): proof tests for djangomart/payments/
checkout.py. Each test fails on 6d64477. The sandbox over real HTTP."""

import pytest
from django.test import Client

from tests.conftest import make_product
from tests.orders.conftest import checkout_body, checkout_post
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = pytest.mark.django_db


def test_a_retry_of_a_refused_checkout_is_answered_as_an_outage(
    sandbox: SandboxServer, client: Client
) -> None:
    """checkout.py _session_ensure: a refusal keeps its Idempotency-Key "so a retry with
    it gets this order again (the same request would be refused again)" (docs/payments.md).
    It gets the order, but as 502 payment_provider_unavailable, "The payment provider
    could not be reached": the very confusion issue 7 section 2 asks to end (outage vs
    refusal). A client that retries on `unavailable`, as it should, retries a refusal
    for 24 hours. The same for any same-key retry of an order that ended otherwise
    (expired, canceled by staff): Stripe was never asked."""
    make_product("sticker", variants=[("STICKER", 10, 5)])  # under Stripe's 50-cent minimum
    body = checkout_body(lines=[{"sku": "STICKER", "quantity": 1}])
    first = checkout_post(client, body, HTTP_IDEMPOTENCY_KEY="refused-0123456789abcdef")
    assert (first.status_code, first.json()["code"]) == (502, "payment_provider_rejected")
    again = checkout_post(client, body, HTTP_IDEMPOTENCY_KEY="refused-0123456789abcdef")
    assert again.json()["id"] == first.json()["id"]
    assert (again.status_code, again.json()["code"]) == (502, "payment_provider_rejected")
