"""Review 8 (issue 12): "order status for guests (the link from the confirmation
email)". The emails' "View your order" link (notify/emails/render.py order_status_url:
the order's success_url, /checkout/return?session_id=...) is the guest's only order
page; the shipping notice and the refund notice link it too. orders/views.py _state
folds fulfilled into "paid" and ignores payment_status once the order is not pending,
and orders/checkout_return.html shows no shipment: a guest whose order shipped reads
"We will email you when it ships" with no tracking, and a refunded guest reads "your
payment was received" with no word of the refund. The customer's own order page
(storefront/account/order.html) shows both."""

import pytest
from django.test import Client
from django.utils import timezone

from djangomart.fulfillment.models import Shipment, ShipmentLine
from djangomart.orders.models import Order
from tests.payments.builders import order_build

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("demo_catalog")]

SESSION_ID = "cs_test_review8guest0001"


def _status_page(client: Client, order: Order) -> str:
    response = client.get("/checkout/return", {"session_id": str(order.stripe_checkout_session_id)})
    assert response.status_code == 200
    return response.content.decode()


def test_a_guests_shipped_order_shows_its_shipment_on_the_emails_order_page(
    client: Client,
) -> None:
    order = order_build(session_id=SESSION_ID)
    Order.objects.filter(pk=order.pk).update(
        status=Order.Status.FULFILLED,
        payment_status=Order.PaymentStatus.PAID,
        fulfillment_status=Order.FulfillmentStatus.FULFILLED,
    )
    shipment = Shipment.objects.create(
        order=order, carrier="DHL", tracking_number="JD0123REVIEW8", shipped_at=timezone.now()
    )
    line = order.lines.get()
    ShipmentLine.objects.create(shipment=shipment, order_line=line, quantity=line.quantity)

    html = _status_page(client, order)

    assert "We will email you when it ships" not in html
    assert "JD0123REVIEW8" in html


def test_a_guests_refunded_order_says_refunded_on_the_emails_order_page(client: Client) -> None:
    order = order_build(session_id=SESSION_ID)
    Order.objects.filter(pk=order.pk).update(
        status=Order.Status.PAID,
        payment_status=Order.PaymentStatus.REFUNDED,
        amount_refunded=order.total,
    )

    html = _status_page(client, order)

    assert "refund" in html.lower(), html[html.find("<h1>") : html.find("<table")]
