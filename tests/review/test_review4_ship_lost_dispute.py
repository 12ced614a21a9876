"""Shipping is refused for a fully refunded order and an open dispute, but not for an
order whose dispute was LOST: the bank took all the money back (disputed=False,
dispute_lost=True, amount_lost_to_disputes == total; payment_status stays `paid`, since
lost money is not a refund), and the staff API ships it with no refusal and no
confirmation: the goods are given away, exactly what `order_refunded` exists to stop."""

from typing import Any

import pytest
from django.test import Client

from tests.fulfillment.conftest import (  # noqa: F401
    bearer,
    paid_order,
    ship_post,
    shipper,
    token,
)

pytestmark = pytest.mark.django_db

DHL = {"carrier": "DHL", "tracking_number": "JD1"}


def test_an_order_whose_money_was_all_lost_to_a_dispute_does_not_ship_silently(
    token: str,  # noqa: F811
) -> None:
    order = paid_order(
        {"MUG-RED": 3}, dispute_lost=True, amount_lost_to_disputes=3000, disputed=False
    )
    response = ship_post(
        Client(), order.pk, {"lines": [{"sku": "MUG-RED", "quantity": 3}], **DHL}, **bearer(token)
    )
    assert response.status_code == 409, response.content
    body: dict[str, Any] = response.json()
    assert body["overridable"] is True
