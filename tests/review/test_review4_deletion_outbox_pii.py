"""Account deletion erases the order's shipping snapshot and the emails' bodies, but not
the outbox's payloads, which carry the order's public representation with its shipping
address (name, street, phone): the admin's delivery page shows it, and a Resend POSTs it
to every endpoint, for up to NOTIFY_RETENTION_DAYS after the customer was erased."""

import json

import pytest
from django.test import Client

from djangomart.notify.events import EventType
from djangomart.notify.models import OutboxEvent
from djangomart.notify.services import notify_enqueue
from tests.accounts.helpers import PASSWORD, app_login, customer_create
from tests.accounts.me_builders import SHIPPING, order_make
from tests.accounts.test_account_deletion import me_delete
from tests.orders.conftest import goods  # noqa: F401

pytestmark = pytest.mark.django_db


def test_deleting_an_account_erases_its_orders_outbox_payloads(goods: None) -> None:  # noqa: F811
    ada = customer_create("ada@example.com")
    order = order_make(ada, shipping=SHIPPING)
    notify_enqueue(EventType.ORDER_PAID, order)
    token = app_login(Client(), "ada@example.com")
    response = me_delete(Client(), {"password": PASSWORD}, **{"X-Session-Token": token})
    assert response.status_code == 204
    order.refresh_from_db()
    assert "Lovelace" not in json.dumps(order.shipping_address)  # the order itself is erased

    payload = json.dumps(OutboxEvent.objects.get(order=order).payload)
    for personal in ("Ada Lovelace", "St James's Square", "+44 20 7946 0000"):
        assert personal not in payload, f"{personal!r} survives in the outbox payload"
