"""Review of issue 7: two requests with the same Idempotency-Key that race each other
(a double-click) must end in one order, answered to both (or a 409
checkout_in_progress), never in an error that says something else."""

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from djangomart.catalog.models import Variant
from djangomart.catalog.services import variants_lock
from djangomart.orders.models import Order
from tests.conftest import make_product
from tests.orders.conftest import checkout_body, checkout_post
from tests.payments.conftest import sandbox, stripe_settings
from tests.payments.race_helpers import held_transaction, lock_waiters_wait
from tests.stripe_sandbox.harness import SandboxServer

__all__ = ["sandbox", "stripe_settings"]

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "double-click-7f3a9c2e4b1d"


def _same_key_race(body: dict[str, Any], variant_pk: int) -> list[Any]:
    """Two requests with one Idempotency-Key, both past the key lookup (no order yet)
    and waiting for the variant row that another transaction holds; then the hold ends."""
    barrier = threading.Barrier(2)

    def post() -> Any:
        try:
            barrier.wait(10)
            return checkout_post(Client(), body, HTTP_IDEMPOTENCY_KEY=KEY)
        finally:
            connection.close()

    pool = ThreadPoolExecutor(2)
    with held_transaction(lambda: variants_lock([variant_pk])):
        futures = [pool.submit(post) for _ in range(2)]
        lock_waiters_wait(2)
    answers = [f.result(60) for f in futures]
    pool.shutdown()
    return answers


def test_a_double_click_on_the_last_unit_answers_both_clicks_with_the_one_order(
    sandbox: SandboxServer,
) -> None:
    make_product("poster", variants=[("POSTER-A2", 900, 1)])
    variant = Variant.objects.get(sku="POSTER-A2")
    body = checkout_body(lines=[{"sku": "POSTER-A2", "quantity": 1}])

    answers = _same_key_race(body, variant.pk)

    assert Order.objects.count() == 1
    order_id = str(Order.objects.get().pk)
    for answer in answers:
        # The second click is the same request: it must get that order (201) or be told
        # to retry (409 checkout_in_progress), not that the item it just reserved is gone.
        assert answer.status_code in (201, 409), answer.content
        payload = answer.json()
        if answer.status_code == 201:
            assert payload["order"]["id"] == order_id
        else:
            assert payload["code"] == "checkout_in_progress", payload


def test_a_retry_with_the_same_key_after_an_outage_can_succeed_once_stripe_is_back(
    sandbox: SandboxServer,
) -> None:
    """An outage answers 502 payment_provider_unavailable, "try again later" (README,
    docs/payments.md). A client that does, with the same Idempotency-Key as retries
    should, gets the canceled order's 502 again for 24 hours: a transient failure is
    stored as the key's final answer (Stripe itself does not store 5xx results)."""
    make_product("tee", variants=[("TEE-M", 2000, 10)])
    sandbox.configure(api_error_rate=1.0)
    first = checkout_post(Client(), checkout_body(), HTTP_IDEMPOTENCY_KEY=KEY)
    assert (first.status_code, first.json()["code"]) == (502, "payment_provider_unavailable")

    sandbox.configure(api_error_rate=0.0)  # Stripe is back
    retry = checkout_post(Client(), checkout_body(), HTTP_IDEMPOTENCY_KEY=KEY)

    assert retry.status_code == 201, retry.json()
