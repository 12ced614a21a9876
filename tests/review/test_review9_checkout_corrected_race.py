"""Review 9 (storefront checkout): restart_if_changed is not applied while the first
attempt is still at Stripe. A guest continues to payment, Stripe is slow, they spot
the typo in their email, fix it and continue again (the corrected form is the last
thing they sent). carts/services.py _checkout_plan's "join" branch (a request of the
same seq/revision whose order is not linked yet) returns the first request's stored
checkout_request without comparing it with this request's details, so the second
submit rides the first attempt: the gateway retries Stripe's idempotency_key_in_use
until the first session exists and the corrected form is answered 302 to that session,
with the mistyped email. Nothing tells the customer their correction was dropped
(review 7's defect, back under concurrency)."""

import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from djangomart.orders.models import Order
from tests.payments.conftest import sandbox, stripe_settings
from tests.review.test_review7_checkout_corrected_address import CORRECTED, FIRST
from tests.stripe_sandbox.harness import SandboxServer

__all__ = ["sandbox", "stripe_settings"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("demo_catalog")]


def test_a_form_corrected_while_the_first_submit_is_at_stripe_is_not_silently_dropped(
    sandbox: SandboxServer,
) -> None:
    first_tab = Client()
    assert (
        first_tab.post("/shop/cart/add", {"sku": "SUNGLASSES-BLK", "quantity": "1"}).status_code
        == 302
    )
    second_tab = Client()
    second_tab.cookies = first_tab.cookies  # the same browser: the same session and cart
    sandbox.configure(api_latency_min=0.6, api_latency_max=0.6)
    answers: dict[str, Any] = {}

    def submit_first() -> None:
        try:
            answers["first"] = first_tab.post("/shop/checkout/", FIRST)
        finally:
            connection.close()

    thread = threading.Thread(target=submit_first)
    thread.start()
    sandbox.wait_executing(method="POST", path="/v1/checkout/sessions")  # first is at Stripe
    corrected = second_tab.post("/shop/checkout/", CORRECTED)
    thread.join()

    assert answers["first"].status_code == 302
    if corrected.status_code == 302:
        # Sent to Stripe as if accepted: the session it pays must be the corrected one.
        order = Order.objects.get(checkout_url=corrected["Location"])
        assert (order.email, (order.shipping_address or {}).get("city")) == (
            "ada@example.com",
            "Paris",
        )
    else:
        # Or refused, saying so (e.g. "try again"): never a silent replay.
        assert corrected.status_code >= 400
