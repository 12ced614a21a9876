"""Review of issue 7, section 2: `expires_at` must stay inside Stripe's window (30
minutes to 24 hours after Stripe creates the session) for every allowed
CHECKOUT_EXPIRY_MINUTES, including when "our clock may be a little ahead of Stripe's"
(docs/payments.md, "expires_at"), which the code allows for at the lower end only."""

from typing import Any

import pytest
from django.test import Client

from djangomart.orders.models import Order
from stripe_sandbox.state import SANDBOX
from tests.orders.conftest import checkout_post, goods
from tests.payments.conftest import sandbox, stripe_settings
from tests.stripe_sandbox.harness import SandboxServer

__all__ = ["goods", "sandbox", "stripe_settings"]

pytestmark = pytest.mark.django_db


def test_the_longest_allowed_expiry_survives_our_clock_being_a_second_ahead_of_stripes(
    goods: None, sandbox: SandboxServer, settings: Any
) -> None:
    settings.CHECKOUT_EXPIRY_MINUTES = 1440  # validated as allowed (30 to 1440)
    # Stripe's clock two seconds behind ours (equivalently: ours two seconds ahead).
    sandbox.app[SANDBOX].store.clock_offset = -2
    response = checkout_post(Client())
    assert response.status_code == 201, response.json()
    assert Order.objects.get().status == "pending"
