"""What staff see and can do in the admin: the Stripe event inbox (filters, search, the
event page, Replay), the order page (lines, timeline, related events, read-only money)
and the attention list; and that nobody else gets in."""

import json
import re
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
from django.contrib.admin.utils import quote, unquote
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.html import escape

from djangomart.orders.models import Order
from djangomart.payments.inbox import stripe_event_process
from djangomart.payments.models import StripeEvent
from tests.payments.builders import charge_object, new_intent_id, order_build
from tests.payments.conftest import event_json, intent_object, post_event, session_object
from tests.payments.race_helpers import is_due

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_settings", "demo_catalog")]

EVENTS = "/admin/payments/stripeevent/"


def deliver(client: Client, event_type: str, obj: dict[str, Any], *, times: int = 1) -> StripeEvent:
    """Posts one signed event `times` times, then processes it once."""
    payload = event_json(event_type, obj)
    for _ in range(times):
        assert post_event(client, payload).status_code == 200
    event_id = json.loads(payload)["id"]
    stripe_event_process(event_id=event_id)
    return StripeEvent.objects.get(pk=event_id)


def paid_order(client: Client) -> tuple[Order, StripeEvent, StripeEvent]:
    """An order paid through a payment_intent.succeeded then a checkout.session.completed
    (its own session already named the PaymentIntent, so both events are the order's)."""
    intent_id = new_intent_id()
    order = order_build(intent_id=intent_id)
    intent = deliver(client, "payment_intent.succeeded", intent_object(order, intent_id))
    session = deliver(
        client, "checkout.session.completed", session_object(order, payment_intent=intent_id)
    )
    order.refresh_from_db()
    return order, intent, session


def failed_event(client: Client, settings: Any, *, times: int = 1) -> StripeEvent:
    """An event whose handler raises; with one attempt allowed it is `dead` at once
    (and processing returns instead of raising)."""
    settings.STRIPE_EVENT_MAX_ATTEMPTS = 1
    order = order_build()  # its own session, whose amount is not a number
    return deliver(
        client, "checkout.session.completed", session_object(order, amount_total="abc"), times=times
    )


def readonly_value(page: str, field: str) -> str:
    """The content the admin renders for a read-only field."""
    match = re.search(
        rf'class="form-row field-{field}".*?<div class="readonly">(.*?)</div>', page, re.DOTALL
    )
    assert match, f"no read-only field {field!r} on the page"
    return match.group(1)


def changelist_ids(staff_client: Client, url: str) -> set[str]:
    """The primary keys of the rows listed on an admin changelist page (from their
    change links)."""
    response = staff_client.get(url)
    assert response.status_code == 200
    path = url.split("?")[0]
    links = re.findall(rf'href="{re.escape(path)}([^/"]+)/change/', response.content.decode())
    return {unquote(pk) for pk in links}


def test_staff_can_filter_the_event_list_by_status(
    client: Client, staff_client: Client, settings: Any
) -> None:
    _, intent, session = paid_order(client)
    dead = failed_event(client, settings)
    assert changelist_ids(staff_client, f"{EVENTS}?status__exact=processed") == {
        intent.pk,
        session.pk,
    }
    assert changelist_ids(staff_client, f"{EVENTS}?status__exact=dead") == {dead.pk}


def test_staff_can_filter_the_event_list_by_type(client: Client, staff_client: Client) -> None:
    _, intent, _ = paid_order(client)
    assert changelist_ids(staff_client, f"{EVENTS}?type__exact=payment_intent.succeeded") == {
        intent.pk
    }


def test_staff_can_filter_the_event_list_by_date_received(
    client: Client, staff_client: Client
) -> None:
    _, intent, session = paid_order(client)
    StripeEvent.objects.filter(pk=intent.pk).update(received_at=timezone.now() - timedelta(days=30))
    page = staff_client.get(EVENTS).content.decode()
    today = re.search(r'<a href="(\?received_at__gte=[^"]+)">Today</a>', page)
    assert today, "no 'Today' date filter in the sidebar"
    assert changelist_ids(staff_client, EVENTS + unescape(today.group(1))) == {session.pk}


def test_staff_can_find_an_event_by_its_id(client: Client, staff_client: Client) -> None:
    _, intent, _ = paid_order(client)
    assert changelist_ids(staff_client, f"{EVENTS}?q={intent.pk}") == {intent.pk}


def test_staff_can_find_every_event_about_a_payment_intent_by_its_id(
    client: Client, staff_client: Client
) -> None:
    order, intent, session = paid_order(client)
    paid_order(client)  # another order's events
    assert changelist_ids(staff_client, f"{EVENTS}?q={order.stripe_payment_intent_id}") == {
        intent.pk,
        session.pk,
    }


def test_staff_can_find_the_events_of_a_checkout_session_by_its_id(
    client: Client, staff_client: Client
) -> None:
    order, _, session = paid_order(client)
    assert changelist_ids(staff_client, f"{EVENTS}?q={order.stripe_checkout_session_id}") == {
        session.pk
    }


def test_the_event_list_makes_the_same_number_of_queries_for_one_event_or_many(
    client: Client, staff_client: Client
) -> None:
    paid_order(client)
    with CaptureQueriesContext(connection) as few:
        assert staff_client.get(EVENTS).status_code == 200
    for _ in range(5):
        paid_order(client)
    with CaptureQueriesContext(connection) as many:
        assert staff_client.get(EVENTS).status_code == 200
    assert len(many) == len(few)


def test_the_event_page_shows_the_payload_pretty_printed(
    client: Client, staff_client: Client
) -> None:
    _, intent, _ = paid_order(client)
    page = staff_client.get(f"{EVENTS}{quote(intent.pk)}/change/").content.decode()
    pretty = json.dumps(intent.payload, indent=2, sort_keys=True)
    assert f"<pre>{escape(pretty)}</pre>" in readonly_value(page, "payload_pretty")


def test_the_event_page_shows_deliveries_attempts_error_and_traceback(
    client: Client, staff_client: Client, settings: Any
) -> None:
    event = failed_event(client, settings, times=3)
    response = staff_client.get(f"{EVENTS}{quote(event.pk)}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert readonly_value(page, "delivery_count") == "3"
    assert readonly_value(page, "attempts") == "1"
    assert readonly_value(page, "status") == "Dead"
    assert escape("ValueError: invalid literal for int() with base 10: 'abc'") in readonly_value(
        page, "last_error"
    )
    traceback = readonly_value(page, "last_traceback")
    assert traceback.startswith("Traceback (most recent call last):")
    assert "checkout_session_apply" in traceback


def test_the_event_page_links_to_its_order(client: Client, staff_client: Client) -> None:
    order, intent, _ = paid_order(client)
    page = staff_client.get(f"{EVENTS}{quote(intent.pk)}/change/").content.decode()
    assert f"href='/admin/orders/order/{order.pk}/change/'" in readonly_value(page, "order_link")


def replay(staff_client: Client, url: str, *events: StripeEvent) -> Any:
    return staff_client.post(
        url,
        {"action": "replay", "index": 0, "_selected_action": [event.pk for event in events]},
    )


def test_the_replay_action_puts_a_dead_event_back_in_the_queue(
    client: Client, staff_client: Client, settings: Any
) -> None:
    dead = failed_event(client, settings)
    assert dead.status == "dead"
    assert '<option value="replay">' in staff_client.get(EVENTS).content.decode()
    assert not is_due(dead.pk)
    response = replay(staff_client, EVENTS, dead)
    assert response.status_code == 302
    dead.refresh_from_db()
    assert (dead.status, dead.attempts, dead.last_error) == ("received", 0, "")
    assert is_due(dead.pk)


def test_the_replay_action_works_from_the_attention_list(
    client: Client, staff_client: Client, settings: Any
) -> None:
    dead = failed_event(client, settings)
    replay(staff_client, "/admin/payments/eventneedingattention/", dead)
    dead.refresh_from_db()
    assert dead.status == "received"


def test_the_replay_action_leaves_processed_events_alone(
    client: Client, staff_client: Client
) -> None:
    _, intent, _ = paid_order(client)
    replay(staff_client, EVENTS, intent)
    intent.refresh_from_db()
    assert (intent.status, intent.attempts) == ("processed", 1)
    assert not is_due(intent.pk)


def order_page(staff_client: Client, order: Order) -> str:
    response = staff_client.get(f"/admin/orders/order/{order.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def inline_rows(page: str, first_field: str) -> list[dict[str, str]]:
    """The rows of a read-only tabular inline, as {field: shown text}; a row starts at
    its `first_field` cell."""
    rows: list[dict[str, str]] = []
    for field, text in re.findall(r'<td class="field-(\w+)">\s*<p>(.*?)</p>', page, re.DOTALL):
        if field == first_field:
            rows.append({})
        if rows:
            rows[-1][field] = text
    return rows


def test_the_order_page_shows_its_lines(client: Client, staff_client: Client) -> None:
    order, _, _ = paid_order(client)
    rows = inline_rows(order_page(staff_client, order), "sku")
    shown = [
        (r["sku"], r["name"], r["unit_price_display"], r["quantity"], r["line_total_display"])
        for r in rows
    ]
    assert shown[:1] == [("CLASSIC-TEE-M", "Classic Tee Size M", "20.00 USD", "2", "40.00 USD")]


def test_the_order_page_shows_its_timeline_with_the_causing_stripe_events(
    client: Client, staff_client: Client
) -> None:
    order, intent, session = paid_order(client)
    rows = inline_rows(order_page(staff_client, order), "created_at")
    timeline = [(r["kind"], r["from_status"], r["to_status"], r["stripe_event_id"]) for r in rows]
    assert timeline == [
        ("Created", "-", "-", "-"),
        ("Transition", "pending", "paid", intent.pk),
        ("Payment Recorded", "-", "-", session.pk),
    ]


def test_the_order_page_lists_its_stripe_events_with_links(
    client: Client, staff_client: Client
) -> None:
    order, intent, session = paid_order(client)
    block = related_events_block(order_page(staff_client, order))
    for event in (intent, session):
        assert f"href='/admin/payments/stripeevent/{quote(event.pk)}/change/'" in block


def related_events_block(page: str) -> str:
    block = page[page.index('class="form-row field-related_stripe_events"') :]
    return block[: block.index("</fieldset>")]


def test_the_order_page_lists_a_dead_event_about_its_checkout_session(
    client: Client, staff_client: Client, settings: Any
) -> None:
    # A failing handler's writes are rolled back, the event's link to its order too;
    # the order's page must still show it.
    settings.STRIPE_EVENT_MAX_ATTEMPTS = 1
    order = order_build()
    dead = deliver(client, "checkout.session.completed", session_object(order, amount_total="x"))
    assert (dead.status, dead.order_id) == ("dead", None)
    related = related_events_block(order_page(staff_client, order))
    assert f"/admin/payments/stripeevent/{quote(dead.pk)}/change/" in related


def test_the_order_page_lists_ignored_events_about_its_payment_intent(
    client: Client, staff_client: Client
) -> None:
    order, _, _ = paid_order(client)
    assert order.stripe_payment_intent_id
    charge = deliver(
        client, "charge.succeeded", charge_object(order, order.stripe_payment_intent_id)
    )
    assert charge.status == "ignored"
    related = related_events_block(order_page(staff_client, order))
    assert f"/admin/payments/stripeevent/{quote(charge.pk)}/change/" in related


def test_the_order_pages_event_links_open_events_whose_ids_look_like_admin_escapes(
    client: Client, staff_client: Client
) -> None:
    # Real Stripe ids such as evt_3C... contain "_3C", which the admin reads as an
    # escaped "<" unless the link quotes the id.
    order = order_build()
    event_id = "evt_3CiPtv2eZvKYlo2CcUZsDcO6"
    payload = event_json("checkout.session.completed", session_object(order), event_id=event_id)
    assert post_event(client, payload).status_code == 200
    stripe_event_process(event_id=event_id)
    page = order_page(staff_client, order)
    link = re.search(r"href='(/admin/payments/stripeevent/[^']+/change/)'", page)
    assert link
    response = staff_client.get(link.group(1))
    assert response.status_code == 200
    assert readonly_value(response.content.decode(), "id") == event_id


MONEY = ["total", "subtotal", "amount_paid", "amount_refunded", "currency", "payment_status"]
# Amounts are shown with their currency, under a display name of their own.
SHOWN_AS = {f: f"{f}_display" for f in ["total", "subtotal", "amount_paid", "amount_refunded"]}


@pytest.mark.parametrize("field", [*MONEY, "status", "disputed", "needs_attention"])
def test_the_order_page_has_no_input_for_money_or_status(
    client: Client, staff_client: Client, field: str
) -> None:
    order, _, _ = paid_order(client)
    page = order_page(staff_client, order)
    assert f'name="{field}"' not in page
    assert readonly_value(page, SHOWN_AS.get(field, field))


def test_a_forged_order_form_post_changes_no_money_field(
    client: Client, staff_client: Client
) -> None:
    order, _, _ = paid_order(client)
    before = Order.objects.values(*MONEY, "status").get(pk=order.pk)
    staff_client.post(
        f"/admin/orders/order/{order.pk}/change/",
        {
            "total": 1,
            "subtotal": 1,
            "amount_paid": 0,
            "amount_refunded": 4000,
            "currency": "eur",
            "payment_status": "refunded",
            "status": "canceled",
            "lines-TOTAL_FORMS": 1,
            "lines-INITIAL_FORMS": 1,
            "events-TOTAL_FORMS": 0,
            "events-INITIAL_FORMS": 0,
        },
    )
    assert Order.objects.values(*MONEY, "status").get(pk=order.pk) == before


def test_the_attention_list_shows_only_flagged_orders_with_their_reasons(
    client: Client, staff_client: Client
) -> None:
    paid_order(client)  # an order that needs nothing
    flagged = order_build()
    deliver(client, "checkout.session.completed", session_object(flagged, currency="eur"))
    url = "/admin/orders/orderneedingattention/"
    assert changelist_ids(staff_client, url) == {str(flagged.pk)}
    assert "currency_mismatch" in staff_client.get(url).content.decode()


def test_the_order_list_makes_the_same_number_of_queries_for_one_order_or_many(
    client: Client, staff_client: Client
) -> None:
    paid_order(client)
    with CaptureQueriesContext(connection) as few:
        assert staff_client.get("/admin/orders/order/").status_code == 200
    for _ in range(5):
        paid_order(client)
    with CaptureQueriesContext(connection) as many:
        assert staff_client.get("/admin/orders/order/").status_code == 200
    assert len(many) == len(few)


ADMIN_PAGES = [
    EVENTS,
    "/admin/payments/eventneedingattention/",
    "/admin/orders/order/",
    "/admin/orders/orderneedingattention/",
]


@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_anonymous_visitors_are_sent_to_the_login_page(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_logged_in_customers_without_staff_status_are_sent_to_the_login_page(
    client: Client, url: str
) -> None:
    client.force_login(User.objects.create_user("customer", "customer@example.com", "pw"))
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_a_customer_cannot_replay_events(client: Client, settings: Any) -> None:
    dead = failed_event(client, settings)
    client.force_login(User.objects.create_user("customer", "customer@example.com", "pw"))
    response = replay(client, EVENTS, dead)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    dead.refresh_from_db()
    assert dead.status == "dead"


def test_staff_without_the_replay_permission_are_not_offered_replay(client: Client) -> None:
    viewer = User.objects.create_user("viewer", "v@example.com", "pw-for-tests", is_staff=True)
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(Permission.objects.get(codename="view_stripeevent"))
    staff = Client()
    staff.force_login(viewer)
    response = staff.get(EVENTS)
    assert response.status_code == 200
    assert '<option value="replay">' not in response.content.decode()


def test_payment_rows_cannot_be_deleted_from_the_admin(
    client: Client, staff_client: Client
) -> None:
    order, _, _ = paid_order(client)
    payment = order.payments.get()
    response = staff_client.get(f"/admin/payments/payment/{payment.pk}/delete/")
    assert response.status_code == 403


def test_staff_can_mark_an_orders_attention_as_resolved(
    client: Client, staff_client: Client
) -> None:
    order = order_build()
    deliver(client, "checkout.session.completed", session_object(order, amount_total=1))
    selected = {"action": "attention_resolve", "_selected_action": [str(order.pk)]}
    confirmation = staff_client.post("/admin/orders/order/", selected)
    assert confirmation.status_code == 200  # a page listing the reasons it will clear
    page = confirmation.content.decode()
    assert f'name="reasons-{order.pk}" value="amount_mismatch"' in page
    seen = re.search(rf'name="seen-{order.pk}" value="(\d+)"', page)
    assert seen
    response = staff_client.post(
        "/admin/orders/order/",
        {**selected, "post": "yes", f"reasons-{order.pk}": ["amount_mismatch"],
         f"seen-{order.pk}": seen.group(1), "reason": "Refunded the difference."},
    )  # fmt: skip
    assert response.status_code == 302
    order.refresh_from_db()
    assert (order.needs_attention, order.attention_reasons) == (False, [])
    assert order.events.filter(message__startswith="Attention resolved by staff").exists()
