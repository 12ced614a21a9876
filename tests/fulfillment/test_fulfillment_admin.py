"""The admin's Ship action (with the confirmation a human needs to override a refusal),
the shipments on the order page, the "To ship" list and its pick lists."""

import re
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from djangomart.fulfillment.models import Shipment
from djangomart.fulfillment.selectors import orders_to_ship, pick_list_aggregate, pick_lists
from djangomart.orders.models import Order
from tests.fulfillment.conftest import line_id, paid_order, staff_member

pytestmark = pytest.mark.django_db


def ship_url(order: Order) -> str:
    return f"/admin/orders/order/{order.pk}/ship/"


def ship_form(order: Order, quantities: dict[str, int], **extra: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "carrier": "DHL",
        "tracking_number": "JD0146",
        "tracking_url": "https://dhl.example/t/1",
        "request_key": str(uuid.uuid4()),
    }
    for line in order.lines.all():
        form[f"line_{line.pk}"] = quantities.get(line.sku, 0)
    form.update(extra)
    return form


def text(response: Any) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def test_the_ship_form_defaults_to_what_is_left_and_ships(staff_client: Client) -> None:
    order = paid_order({"MUG-RED": 3, "MUG-BLUE": 1})
    page = staff_client.get(ship_url(order))
    assert page.status_code == 200
    red = line_id(order, "MUG-RED")
    assert re.search(rf'name="line_{red}" value="3"', page.content.decode())
    assert "Ship" in staff_client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()

    form = ship_form(order, {"MUG-RED": 3, "MUG-BLUE": 1})
    done = staff_client.post(ship_url(order), form)
    assert done.status_code == 302
    order.refresh_from_db()
    assert (order.status, order.fulfillment_status) == ("fulfilled", "fulfilled")
    # The same page sent again (a double-click) ships nothing more.
    again = staff_client.post(ship_url(order), form, follow=True)
    assert "already recorded" in text(again)
    assert Shipment.objects.filter(order=order).count() == 1
    change = text(staff_client.get(f"/admin/orders/order/{order.pk}/change/"))
    assert "3 x MUG-RED, 1 x MUG-BLUE" in change  # the shipments inline
    assert "https://dhl.example/t/1" in change


def test_an_overridable_refusal_asks_for_confirmation_then_ships(staff_client: Client) -> None:
    order = paid_order({"MUG-RED": 2}, disputed=True)
    form = ship_form(order, {"MUG-RED": 1})

    asked = staff_client.post(ship_url(order), form)
    assert asked.status_code == 200
    assert "Shipping is refused" in text(asked)
    assert "dispute" in text(asked)
    assert 'name="confirm_override"' in asked.content.decode()
    assert not Shipment.objects.exists()

    # Confirming without ticking the box ships nothing.
    unticked = staff_client.post(
        ship_url(order), {**form, "confirming": "True", "override_reason": "proof"}
    )
    assert unticked.status_code == 200
    assert not Shipment.objects.exists()

    confirmed = staff_client.post(
        ship_url(order),
        {
            **form,
            "confirming": "True",
            "confirm_override": "on",
            "override_reason": "Delivery proof fights the dispute.",
        },
    )
    assert confirmed.status_code == 302
    shipment = Shipment.objects.get(order=order)
    assert shipment.override == {
        "refusals": ["order_disputed"],
        "reason": "Delivery proof fights the dispute.",
    }
    note = order.events.get(kind="shipment")
    assert "Shipped despite order_disputed" in note.message
    assert "Delivery proof fights the dispute." in note.message


def test_overriding_needs_its_own_permission(db: None) -> None:
    order = paid_order({"MUG-RED": 2}, payment_status="refunded", amount_refunded=2000)
    user = staff_member("sam", "add_shipment", "view_order", "change_order")
    client = Client()
    client.force_login(user)
    form = ship_form(order, {"MUG-RED": 1})
    refused = client.post(
        ship_url(order),
        {**form, "confirming": "True", "confirm_override": "on", "override_reason": "x"},
        follow=True,
    )
    assert "Can ship an order that is refunded, disputed or lost a dispute" in text(refused)
    assert not Shipment.objects.exists()


def test_a_refusal_no_human_may_override_is_shown_and_ships_nothing(
    staff_client: Client,
) -> None:
    order = paid_order({"MUG-RED": 2})
    Order.objects.filter(pk=order.pk).update(status="pending", payment_status="unpaid")
    page = staff_client.get(ship_url(order))
    assert "only a paid order ships" in text(page)
    assert "This action does not apply" in text(page)
    posted = staff_client.post(ship_url(order), ship_form(order, {"MUG-RED": 1}), follow=True)
    assert "only a paid order ships" in text(posted)
    assert not Shipment.objects.exists()
    # Too many: the form says so.
    order = paid_order({"MUG-BLUE": 1})
    over = staff_client.post(
        ship_url(order),
        ship_form(order, {"MUG-BLUE": 1}) | {f"line_{line_id(order, 'MUG-BLUE')}": 2},
        follow=True,
    )
    assert not Shipment.objects.filter(order=order).exists()
    assert over.status_code == 200


def test_shipping_from_the_admin_needs_the_shipment_permission(db: None) -> None:
    order = paid_order({"MUG-RED": 2})
    user = staff_member("olga", "view_order", "change_order")
    client = Client()
    client.force_login(user)
    assert client.get(ship_url(order)).status_code == 403
    assert client.post(ship_url(order), ship_form(order, {"MUG-RED": 1})).status_code == 403
    assert not Shipment.objects.exists()


def test_to_ship_lists_paid_unfulfilled_orders_without_attention_oldest_first(
    staff_client: Client, django_assert_max_num_queries: Any
) -> None:
    oldest = paid_order({"MUG-RED": 3, "MUG-BLUE": 1})
    partial = paid_order({"MUG-RED": 2})
    flagged = paid_order({"MUG-RED": 1}, needs_attention=True, attention_reasons=["x"])
    done = paid_order({"MUG-BLUE": 1})
    refunded = paid_order({"MUG-BLUE": 1}, payment_status="refunded")
    disputed = paid_order({"MUG-BLUE": 1}, disputed=True)
    lost = paid_order({"MUG-BLUE": 1}, dispute_lost=True, amount_lost_to_disputes=1000)
    pending = paid_order({"MUG-BLUE": 1})
    Order.objects.filter(pk=pending.pk).update(status="pending")
    from djangomart.fulfillment.services import shipment_create

    user = User.objects.get(username="staff")
    shipment_create(order_id=partial.pk, lines=[("MUG-RED", 1)], carrier="DHL", user=user)
    shipment_create(order_id=done.pk, lines=[("MUG-BLUE", 1)], carrier="DHL", user=user)
    del flagged, refunded, disputed, lost

    assert [o.pk for o in orders_to_ship()] == [oldest.pk, partial.pk]
    with django_assert_max_num_queries(2):
        lists = pick_lists(list(orders_to_ship()))
    assert [(p.sku, p.quantity) for p in lists[oldest.pk]] == [("MUG-RED", 3), ("MUG-BLUE", 1)]
    assert [(p.sku, p.quantity) for p in lists[partial.pk]] == [("MUG-RED", 1)]
    totals = pick_list_aggregate([oldest.pk, partial.pk])
    assert [(p.sku, p.name, p.quantity) for p in totals] == [
        ("MUG-BLUE", "Mug Blue", 1),
        ("MUG-RED", "Mug Red", 4),
    ]

    page = text(staff_client.get("/admin/fulfillment/ordertoship/"))
    assert page.index(str(oldest.pk)) < page.index(str(partial.pk))
    assert str(done.pk) not in page
    assert str(pending.pk) not in page
    assert "3 x MUG-RED" in page

    picked = staff_client.post(
        "/admin/fulfillment/ordertoship/",
        {"action": "pick_list_action", "_selected_action": [str(oldest.pk), str(partial.pk)]},
    )
    assert picked.status_code == 200
    body = text(picked)
    totals_table = body[body.index('id="pick-list-totals"') : body.index("Per order")]
    assert re.findall(r"<td>(MUG-\w+)</td><td>[^<]*</td><td>(\d+)</td>", totals_table) == [
        ("MUG-BLUE", "1"),
        ("MUG-RED", "4"),
    ]
