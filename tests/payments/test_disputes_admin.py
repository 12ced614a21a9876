"""What staff see of disputes and refunds in the admin: the open disputes, soonest
evidence deadline first (overdue ones first and marked), each with its order; and the
order page's read-only refunds and disputes."""

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order
from djangomart.payments import facts
from djangomart.payments.disputes import dispute_fact
from djangomart.payments.models import Dispute, Refund
from tests.payments.builders import dispute_object, new_dispute_id, new_intent_id, order_build

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("demo_catalog")]

OPEN_DISPUTES = "/admin/payments/opendispute/"


def disputed_order(
    *, due_in: timedelta, status: str = "needs_response", amount: int = 4000
) -> Dispute:
    """An order with its own PaymentIntent and one dispute of it, recorded as its
    charge.dispute.* handler records it (order locked)."""
    order = order_build()
    intent_id = new_intent_id()
    due_by = int((timezone.now() + due_in).timestamp())
    obj = dispute_object(
        order,
        intent_id,
        new_dispute_id(),
        status,
        amount=amount,
        evidence_details={"due_by": due_by},
    )
    with transaction.atomic():
        locked = orders_lock([order.pk])[order.pk]
        facts.payment_intent_adopt(locked, intent_id)
        dispute = dispute_fact(
            locked,
            obj,
            event_type="charge.dispute.created",
            stripe_event_id=f"evt_test_{obj['id']}",
            event_created=timezone.now(),
        )
    assert dispute is not None
    return dispute


def listed(staff_client: Client, url: str = OPEN_DISPUTES) -> list[str]:
    """The dispute ids on a changelist page, in the order shown."""
    response = staff_client.get(url)
    assert response.status_code == 200
    return re.findall(r">(dp_test_[0-9a-f]+)</a>", response.content.decode())


def row_of(page: str, dispute_id: str) -> str:
    match = re.search(rf"<tr[^>]*>(?:(?!</tr>).)*{dispute_id}(?:(?!</tr>).)*</tr>", page, re.S)
    assert match, f"no row for {dispute_id}"
    return match.group(0)


def test_open_disputes_are_listed_soonest_deadline_first_with_the_overdue_ones_marked(
    staff_client: Client,
) -> None:
    later = disputed_order(due_in=timedelta(days=10))
    overdue = disputed_order(due_in=-timedelta(days=1))
    soon = disputed_order(due_in=timedelta(days=3, hours=2), status="warning_needs_response")
    reviewed = disputed_order(due_in=timedelta(days=5), status="under_review")
    won = disputed_order(due_in=timedelta(days=1), status="won")

    assert listed(staff_client) == [
        overdue.stripe_dispute_id,
        soon.stripe_dispute_id,
        reviewed.stripe_dispute_id,
        later.stripe_dispute_id,
    ]
    assert won.stripe_dispute_id not in listed(staff_client)
    page = staff_client.get(OPEN_DISPUTES).content.decode()
    assert "(OVERDUE)" in row_of(page, overdue.stripe_dispute_id)
    # Three days and two hours, less the seconds the test took.
    assert "(in 3 d 1 h)" in row_of(page, soon.stripe_dispute_id)
    assert "OVERDUE" not in row_of(page, later.stripe_dispute_id)
    # Each row links its order.
    assert f"/admin/orders/order/{overdue.order_id}/change/" in row_of(
        page, overdue.stripe_dispute_id
    )
    assert "40.00 USD" in row_of(page, overdue.stripe_dispute_id)


def test_all_disputes_are_listed_including_closed_ones(staff_client: Client) -> None:
    open_ = disputed_order(due_in=timedelta(days=2))
    lost = disputed_order(due_in=timedelta(days=2), status="lost")
    assert set(listed(staff_client, "/admin/payments/dispute/")) == {
        open_.stripe_dispute_id,
        lost.stripe_dispute_id,
    }


def test_the_open_dispute_list_makes_the_same_number_of_queries_for_one_or_many(
    staff_client: Client,
) -> None:
    disputed_order(due_in=timedelta(days=2))
    with CaptureQueriesContext(connection) as few:
        assert staff_client.get(OPEN_DISPUTES).status_code == 200
    for days in range(4):
        disputed_order(due_in=timedelta(days=days))
    with CaptureQueriesContext(connection) as many:
        assert staff_client.get(OPEN_DISPUTES).status_code == 200
    assert len(many) == len(few)


def test_a_dispute_page_is_read_only(staff_client: Client) -> None:
    dispute = disputed_order(due_in=timedelta(days=2))
    response = staff_client.get(f"{OPEN_DISPUTES}{dispute.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert dispute.stripe_dispute_id in page
    assert 'name="_save"' not in page
    assert staff_client.get(f"{OPEN_DISPUTES}add/").status_code == 403
    before = Dispute.objects.values().get(pk=dispute.pk)
    staff_client.post(f"{OPEN_DISPUTES}{dispute.pk}/change/", {"status": "won", "amount": 1})
    staff_client.post(f"{OPEN_DISPUTES}{dispute.pk}/delete/", {"post": "yes"})
    assert Dispute.objects.values().get(pk=dispute.pk) == before


def test_a_non_staff_user_cannot_see_the_disputes(client: Client) -> None:
    disputed_order(due_in=timedelta(days=2))
    user = User.objects.create_user("customer", "c@example.com")
    client.force_login(user)
    response = client.get(OPEN_DISPUTES)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def refund_for(order: Order, **fields: Any) -> Refund:
    payment = order.payments.get()
    values: dict[str, Any] = {
        "order": order,
        "payment": payment,
        "stripe_payment_intent_id": payment.stripe_payment_intent_id,
        "amount": 1000,
        "currency": order.currency,
        "status": Refund.Status.SUCCEEDED,
        "origin": Refund.Origin.STRIPE,
        "stripe_refund_id": f"re_test_{new_dispute_id()[8:]}",
        "reason": "requested_by_customer",
    }
    values.update(fields)
    return Refund.objects.create(**values)


def test_the_order_page_shows_its_refunds_and_disputes_read_only(staff_client: Client) -> None:
    dispute = disputed_order(due_in=timedelta(days=2), amount=1500)
    order = Order.objects.get(pk=dispute.order_id)
    refund = refund_for(order, amount=1250, status=Refund.Status.FAILED, failure_reason="lost_card")
    page = staff_client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    dispute_row = row_of(page, dispute.stripe_dispute_id)
    assert "15.00 USD" in dispute_row
    assert "needs_response" in dispute_row
    assert f"/admin/payments/dispute/{dispute.pk}/change/" in dispute_row
    refund_row = row_of(page, str(refund.stripe_refund_id))
    assert "12.50 USD" in refund_row
    assert "lost_card" in refund_row
    # Nothing to edit, add or delete in either.
    for row in (dispute_row, refund_row):
        assert "<input" not in re.sub(r'<input type="hidden"[^>]*>', "", row)
        assert "<select" not in row
        assert "<textarea" not in row
    for prefix in ("refunds", "disputes"):
        assert f'name="{prefix}-MAX_NUM_FORMS" value="0"' in page  # no new rows
        assert f'name="{prefix}-0-DELETE"' not in page


def test_the_order_page_makes_the_same_number_of_queries_for_one_refund_or_many(
    staff_client: Client,
) -> None:
    dispute = disputed_order(due_in=timedelta(days=2))
    order = Order.objects.get(pk=dispute.order_id)
    refund_for(order, requested_by=User.objects.create_user("s1"))
    url = f"/admin/orders/order/{order.pk}/change/"
    with CaptureQueriesContext(connection) as few:
        assert staff_client.get(url).status_code == 200
    for n in range(3):
        refund_for(order, requested_by=User.objects.create_user(f"s{n + 2}"))
    with CaptureQueriesContext(connection) as many:
        assert staff_client.get(url).status_code == 200
    assert len(many) == len(few)
