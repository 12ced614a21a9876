"""The admin shows money as people read it ("40.00 USD"), its read-only pages have no
Save button, and "View site" leads somewhere."""

import json
import re
from typing import Any

import pytest
from django.contrib.admin.utils import quote
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from djangomart.orders.models import Order
from djangomart.payments.inbox import stripe_event_process
from djangomart.payments.models import Payment, StripeEvent
from tests.payments.builders import new_intent_id, order_build
from tests.payments.conftest import event_json, intent_object, post_event, session_object

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_settings", "demo_catalog")]


def paid_order(client: Client) -> Order:
    """2 x CLASSIC-TEE-M (20.00 USD), paid through a signed checkout.session.completed."""
    order = order_build(quantity=2)
    intent_id = new_intent_id()
    for event_type, obj in [
        ("payment_intent.succeeded", intent_object(order, intent_id)),
        ("checkout.session.completed", session_object(order, payment_intent=intent_id)),
    ]:
        payload = event_json(event_type, obj)
        assert post_event(client, payload).status_code == 200
        stripe_event_process(event_id=json.loads(payload)["id"])
    order.refresh_from_db()
    assert order.status == "paid"
    return order


def get(staff_client: Client, url: str) -> str:
    response = staff_client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def cells(page: str, field: str) -> list[str]:
    """What the admin shows for `field`: list cells, inline cells and read-only fields."""
    found = re.findall(rf'<td class="field-{field}[^"]*">\s*(?:<p>)?(.*?)(?:</p>)?\s*</td>', page)
    found += re.findall(
        rf'class="form-row field-{field}".*?<div class="readonly">(.*?)</div>', page, re.DOTALL
    )
    return [text.strip() for text in found]


def test_the_order_list_shows_totals_with_their_currency(
    client: Client, staff_client: Client
) -> None:
    paid_order(client)
    assert cells(get(staff_client, "/admin/orders/order/"), "total_display") == ["40.00 USD"]


@pytest.mark.parametrize(
    ("field", "shown"),
    [
        ("subtotal_display", "40.00 USD"),
        ("total_display", "40.00 USD"),
        ("amount_paid_display", "40.00 USD"),
        ("amount_refunded_display", "0.00 USD"),
        ("unit_price_display", "20.00 USD"),
        ("line_total_display", "40.00 USD"),
    ],
)
def test_the_order_page_shows_amounts_with_their_currency(
    client: Client, staff_client: Client, field: str, shown: str
) -> None:
    order = paid_order(client)
    page = get(staff_client, f"/admin/orders/order/{order.pk}/change/")
    assert cells(page, field) == [shown]


def test_the_order_page_with_many_lines_makes_the_same_number_of_queries(
    client: Client, staff_client: Client
) -> None:
    from djangomart.catalog.models import Variant
    from djangomart.orders.models import OrderLine

    counts = []
    for extra in (0, 3):
        order = paid_order(client)
        for variant in Variant.objects.exclude(sku="CLASSIC-TEE-M").order_by("pk")[:extra]:
            OrderLine.objects.create(
                order=order, variant=variant, sku=variant.sku, name=variant.sku,
                unit_price=variant.price, quantity=1, line_total=variant.price,
            )  # fmt: skip
        with CaptureQueriesContext(connection) as queries:
            get(staff_client, f"/admin/orders/order/{order.pk}/change/")
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_payment_rows_show_the_amount_with_its_currency(
    client: Client, staff_client: Client
) -> None:
    order = paid_order(client)
    payment = Payment.objects.get(order=order)
    listing = get(staff_client, "/admin/payments/payment/")
    assert cells(listing, "amount_received_display") == ["40.00 USD"]
    detail = get(staff_client, f"/admin/payments/payment/{payment.pk}/change/")
    assert cells(detail, "amount_received_display") == ["40.00 USD"]


def read_only_pages(client: Client) -> list[str]:
    order = paid_order(client)
    event = StripeEvent.objects.filter(order=order).first()
    assert event is not None
    payment = Payment.objects.get(order=order)
    return [
        f"/admin/orders/order/{order.pk}/change/",
        f"/admin/orders/orderneedingattention/{order.pk}/change/",
        f"/admin/payments/stripeevent/{quote(event.pk)}/change/",
        f"/admin/payments/payment/{payment.pk}/change/",
    ]


def test_read_only_pages_have_no_save_buttons_but_a_close_link(
    client: Client, staff_client: Client
) -> None:
    pages = read_only_pages(client)
    Order.objects.update(needs_attention=True)  # so the attention page lists it too
    for url in pages:
        page = get(staff_client, url)
        assert 'name="_save"' not in page, url
        assert 'name="_continue"' not in page, url
        assert 'name="_addanother"' not in page, url
        assert 'class="closelink"' in page, url


def test_actions_still_work_on_the_read_only_order_list(
    client: Client, staff_client: Client
) -> None:
    order = paid_order(client)
    Order.objects.filter(pk=order.pk).update(needs_attention=True, attention_reasons=["x"])
    selected = {"action": "attention_resolve", "_selected_action": [str(order.pk)]}
    assert staff_client.post("/admin/orders/order/", selected).status_code == 200
    response = staff_client.post(
        "/admin/orders/order/",
        {**selected, "post": "yes", f"reasons-{order.pk}": ["x"], "reason": "Checked."},
    )
    assert response.status_code == 302
    assert not Order.objects.get(pk=order.pk).needs_attention


def test_view_site_goes_to_the_api_docs_without_a_frontend(staff_client: Client) -> None:
    page = get(staff_client, "/admin/")
    link = re.search(r'<a href="([^"]+)">View site</a>', page)
    assert link
    assert link.group(1) == "/api/v1/docs"
    assert Client().get(link.group(1)).status_code == 200


def test_the_api_docs_that_view_site_opens_exist(settings: Any) -> None:
    assert Client().get("/api/v1/docs").status_code == 200
