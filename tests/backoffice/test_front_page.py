"""The admin's front page lists what needs a human today, to those allowed to see it, in
a constant number of queries."""

import re
import uuid

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from djangomart.catalog.models import Variant
from djangomart.orders.models import Order
from djangomart.payments.models import StripeEvent
from tests.payments.builders import dispute_object, new_dispute_id, new_intent_id, order_build
from tests.payments.conftest import (
    event_json,
    session_object,
    stripe_settings,  # noqa: F401 (a fixture)
)
from tests.payments.refund_helpers import deliver

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_settings", "demo_catalog")]


def paid(client: Client, sku: str = "CLASSIC-TEE-M") -> tuple[Order, str]:
    intent_id = new_intent_id()
    order = order_build(sku=sku)
    deliver(
        client,
        event_json("checkout.session.completed", session_object(order, payment_intent=intent_id)),
    )
    order.refresh_from_db()
    assert order.status == "paid"
    return order, intent_id


def dead_event() -> StripeEvent:
    now = timezone.now()
    return StripeEvent.objects.create(
        id=f"evt_test_{uuid.uuid4().hex[:24]}",
        type="charge.refunded",
        stripe_created=now,
        received_at=now,
        payload={},
        status=StripeEvent.Status.DEAD,
        last_error="KeyError: 'charge'",
    )


def panels(html: str) -> dict[str, list[str]]:
    """{panel caption: [row texts]} from the page."""
    found: dict[str, list[str]] = {}
    for table in re.findall(r'<div class="module today-panel">(.*?)</table>', html, re.S):
        caption_html = re.search(r"<caption>(.*?)</caption>", table, re.S)
        assert caption_html is not None
        caption = re.sub(r"<[^>]+>", "", caption_html[1]).strip()
        rows = [
            re.sub(r"<[^>]+>", "", row).strip()
            for row in re.findall(r"<td>(.*?)</td>", table, re.S)
        ]
        found[caption] = rows
    return found


def test_the_front_page_lists_todays_work(staff_client: Client, client: Client) -> None:
    to_ship, _ = paid(client)
    disputed, intent_id = paid(client)
    deliver(
        client,
        event_json("charge.dispute.created", dispute_object(disputed, intent_id, new_dispute_id())),
    )
    event = dead_event()
    Variant.objects.filter(sku="CLASSIC-TEE-L").update(low_stock_threshold=10_000)

    page = staff_client.get("/admin/")
    assert page.status_code == 200
    shown = panels(page.content.decode())

    assert any(str(disputed.pk) in row for row in shown["Orders needing attention (1)"])
    assert any(event.pk in row for row in shown["Dead Stripe events (replay them once fixed) (1)"])
    (due,) = shown["Open disputes, by evidence due date (1)"]
    assert "evidence due" in due
    assert str(disputed.pk) in due
    # The disputed order needs attention: it is not on the shipping list.
    (ship,) = shown["Orders to ship (1)"]
    assert str(to_ship.pk) in ship
    low = shown[next(k for k in shown if k.startswith("Variants at or below"))]
    assert any(row.startswith("CLASSIC-TEE-L ") for row in low)
    # The admin's own app list is still there below.
    assert "app-catalog" in page.content.decode()


def test_a_panel_shows_only_to_staff_allowed_to_view_its_list(client: Client) -> None:
    paid(client)
    user = User.objects.create_user("clerk", "clerk@example.com", "pw-for-tests", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_variant"))
    staff = Client()
    staff.force_login(user)

    shown = panels(staff.get("/admin/").content.decode())

    assert list(shown) == [next(k for k in shown if k.startswith("Variants at or below"))]


def test_the_front_page_costs_the_same_queries_with_more_work(
    staff_client: Client, client: Client
) -> None:
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert staff_client.get("/admin/").status_code == 200
        return len(captured)

    paid(client)
    dead_event()
    few = queries()
    for _ in range(3):
        paid(client)
        dead_event()
    Variant.objects.update(low_stock_threshold=10_000)
    assert queries() == few
