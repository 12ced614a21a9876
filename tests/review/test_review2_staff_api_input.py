"""Review 2: bad input to the staff refund API must be a clean 4xx that changes nothing.
A body that is valid JSON but not an object is not "no amount": it must never be read
as a request for a full refund."""

import pytest
from django.test import Client

from djangomart.accounts.services import staff_token_create
from djangomart.payments.models import Refund
from tests.payments.test_staff_api import (
    bearer,
    paid_order,
    refund_posts,
    refunds_url,
    staff_member,
)
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("body", [b"[]", b'"refund me"', b"null"])
def test_a_body_that_is_not_a_json_object_is_refused_and_refunds_nothing(
    sandbox: SandboxServer, body: bytes
) -> None:
    order = paid_order(sandbox)
    token = staff_token_create(staff_member("alice", "add_refund"), "review")[0]
    response = Client().generic(
        "POST",
        refunds_url(order.pk),
        body,
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="review2-not-an-object-0001",
        **bearer(token),
    )
    assert response.status_code == 422, response.content
    assert response.json()["code"] == "validation_error"
    assert not Refund.objects.exists()
    assert refund_posts(sandbox) == []
    order.refresh_from_db()
    assert (order.amount_refunded, order.payment_status) == (0, "paid")
