"""Two staff members ship the last units of a line at the same moment, each in its own
thread and connection: the order's row lock lets one of them, the other is refused, and
no more than was ordered ever ships."""

import pytest
from django.contrib.auth.models import User

from djangomart.core.errors import DomainError
from djangomart.fulfillment.models import Shipment, ShipmentLine
from djangomart.fulfillment.services import ShipmentExceedsRemaining, shipment_create
from djangomart.notify.models import OutboxEvent
from djangomart.orders.models import Order, OrderLine
from tests.fulfillment.conftest import paid_order
from tests.payments.race_helpers import race


@pytest.mark.django_db(transaction=True)
def test_two_shipments_racing_for_the_last_units_ship_at_most_what_was_ordered() -> None:
    order = paid_order({"MUG-RED": 3})
    staff = [User.objects.create_user(name, is_staff=True) for name in ("ann", "bob")]

    def ship(user: User, key: str) -> object:
        try:
            return shipment_create(
                order_id=order.pk,
                lines=[("MUG-RED", 2)],
                carrier="DHL",
                user=user,
                idempotency_key=key,
            )
        except DomainError as exc:
            return exc

    outcomes = race(
        [
            lambda: ship(staff[0], "race-key-ann-0001"),
            lambda: ship(staff[1], "race-key-bob-0001"),
        ]
    )
    refused = [o for o in outcomes if isinstance(o, ShipmentExceedsRemaining)]
    assert len(refused) == 1, outcomes
    assert refused[0].extra["remaining"] == 1
    assert Shipment.objects.filter(order=order).count() == 1
    assert sum(ShipmentLine.objects.values_list("quantity", flat=True)) == 2
    assert OrderLine.objects.get(order=order).quantity_shipped == 2
    assert Order.objects.get(pk=order.pk).fulfillment_status == "partial"
    assert OutboxEvent.objects.filter(order=order, type="shipment.created").count() == 1
