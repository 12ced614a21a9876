"""What each email says and to whom: rendered from the fact's payload, the recipient
read when it is sent."""

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone
from procrastinate.contrib.django.models import ProcrastinateJob

from djangomart.accounts.deletion import placeholder_email
from djangomart.notify.emails.models import Notification
from djangomart.notify.emails.render import ContentErased, NoRecipient, notification_render
from djangomart.notify.emails.services import (
    MAX_ATTEMPTS,
    notifications_prune,
    notifications_requeue_stale,
)
from djangomart.notify.events import EventType
from djangomart.notify.models import OutboxEvent
from djangomart.notify.services import notify_enqueue
from djangomart.orders import transitions
from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order, OrderEvent
from djangomart.orders.services import order_flag
from tests.payments.builders import order_build

pytestmark = pytest.mark.usefixtures("demo_catalog")

SESSION_ID = "cs_test_emailcontent0001"


@pytest.fixture
def order() -> Order:
    order = order_build(session_id=SESSION_ID)
    Order.objects.filter(pk=order.pk).update(
        success_url="https://shop.example/checkout/success?session_id={CHECKOUT_SESSION_ID}"
    )
    order.refresh_from_db()
    return order


def enqueue(order: Order, event_type: EventType, cause: str = "", **objects: Any) -> Notification:
    with transaction.atomic():
        locked = orders_lock([order.pk])[order.pk]
        notify_enqueue(event_type, locked, cause=cause, objects=objects)
    return Notification.objects.get(order=order, event__type=event_type)


def jobs_for(notification: Notification) -> int:
    return ProcrastinateJob.objects.filter(
        task_name="notification_send", args={"notification_id": str(notification.pk)}
    ).count()


def test_payment_queues_the_confirmation_with_its_job_in_the_facts_transaction(
    order: Order,
) -> None:
    with transaction.atomic():
        transitions.apply(orders_lock([order.pk])[order.pk], Order.Status.PAID)
    notification = Notification.objects.get(order=order)
    assert (notification.kind, notification.status, notification.cause) == (
        "order_confirmation",
        "queued",
        "",
    )
    assert jobs_for(notification) == 1


def test_the_confirmation_lists_lines_and_total_and_links_the_order_status_page(
    order: Order,
) -> None:
    rendered = notification_render(enqueue(order, EventType.ORDER_PAID))
    assert rendered.recipients == ["buyer@example.com"]
    assert rendered.subject == f"Acme Tees: order {str(order.pk)[:8].upper()} confirmed"
    link = f"https://shop.example/checkout/success?session_id={SESSION_ID}"
    assert "- 2 x Classic Tee Size M (CLASSIC-TEE-M) at 20.00 USD: 40.00 USD" in rendered.text
    assert "Total: 40.00 USD" in rendered.text
    assert '<td align="right">2</td><td align="right">20.00 USD</td>' in rendered.html
    assert "<strong>40.00 USD</strong>" in rendered.html
    assert link in rendered.text
    assert f'href="{link}"' in rendered.html
    assert "Acme Tees" in rendered.html
    assert "&amp;" not in rendered.text


def test_a_shipping_notice_names_the_carrier_and_links_the_tracking_page(order: Order) -> None:
    shipment: dict[str, Any] = {
        "id": "7",
        "carrier": "UPS",
        "tracking_number": "1Z999AA10123456784",
        "tracking_url": "https://ups.example/track?n=1Z999AA10123456784&lang=en",
        "shipped_at": timezone.now().isoformat(),
        "lines": [{"sku": "CLASSIC-TEE-M", "name": "Classic Tee M", "quantity": 1}],
    }
    notification = enqueue(order, EventType.SHIPMENT_CREATED, cause="7", shipment=shipment)
    rendered = notification_render(notification)
    assert (notification.kind, notification.cause) == ("shipping_notice", "7")
    assert "has shipped" in rendered.subject
    assert "UPS" in rendered.text
    assert "1Z999AA10123456784" in rendered.text
    assert shipment["tracking_url"] in rendered.text
    assert 'href="https://ups.example/track?n=1Z999AA10123456784&amp;lang=en"' in rendered.html
    assert "1 x Classic Tee M (CLASSIC-TEE-M)" in rendered.text


def test_a_tracking_url_that_is_not_a_web_address_is_not_linked(order: Order) -> None:
    shipment: dict[str, Any] = {"id": "8", "carrier": "X", "tracking_number": "T1",
                "tracking_url": "javascript:alert(1)", "shipped_at": None, "lines": []}  # fmt: skip
    rendered = notification_render(
        enqueue(order, EventType.SHIPMENT_CREATED, cause="8", shipment=shipment)
    )
    assert "javascript:" not in rendered.html + rendered.text


def test_a_refund_notice_formats_the_amount_for_its_currency(order: Order) -> None:
    refund_id = "5b0c2d8e-4f7a-4c1e-9d1a-1f0e2d3c4b5a"
    refund = {"id": refund_id, "amount": 1250, "currency": "usd", "status": "succeeded",
              "reason": None, "created_at": timezone.now().isoformat()}  # fmt: skip
    rendered = notification_render(
        enqueue(order, EventType.REFUND_SUCCEEDED, cause=refund_id, refund=refund)
    )
    assert "refund of 12.50 USD" in rendered.subject
    assert "12.50 USD" in rendered.text
    assert "12.50 USD" in rendered.html


def test_a_zero_decimal_refund_has_no_decimals(order: Order) -> None:
    refund = {"id": "jpy-1", "amount": 500, "currency": "jpy", "status": "succeeded",
              "reason": None, "created_at": timezone.now().isoformat()}  # fmt: skip
    rendered = notification_render(
        enqueue(order, EventType.REFUND_SUCCEEDED, cause="jpy-1", refund=refund)
    )
    assert "refund of 500 JPY" in rendered.subject


@pytest.mark.parametrize(
    ("status", "words"), [("expired", "expired"), ("failed", "payment for order")]
)
def test_an_order_that_ended_unpaid_gets_one_email_saying_how(
    order: Order, status: str, words: str
) -> None:
    with transaction.atomic():
        transitions.apply(orders_lock([order.pk])[order.pk], status)
    notification = Notification.objects.get(order=order)
    rendered = notification_render(notification)
    assert notification.kind == "order_unpaid"
    assert words in rendered.subject
    assert "Nothing was charged" in rendered.text


def test_needs_attention_mails_the_staff_list_with_the_reason_and_admin_link(
    order: Order, settings: Any
) -> None:
    settings.PUBLIC_URL = "https://api.shop.example"
    with transaction.atomic():
        order_flag(orders_lock([order.pk])[order.pk], "amount_mismatch", message="Paid 1.00 USD")
    notification = Notification.objects.get(order=order)
    rendered = notification_render(notification)
    assert notification.kind == "staff_needs_attention"
    assert rendered.recipients == ["ops@shop.example", "owner@shop.example"]
    assert "needs attention: amount_mismatch" in rendered.subject
    assert "Paid 1.00 USD" in rendered.text
    assert f"https://api.shop.example/admin/orders/order/{order.pk}/change/" in rendered.text


def test_a_dispute_mails_the_staff_with_its_amount_and_deadline(order: Order) -> None:
    dispute = {"id": "dp_test_1", "status": "needs_response", "amount": 4000, "currency": "usd",
               "reason": "fraudulent", "evidence_due_by": "2026-12-20T00:00:00Z"}  # fmt: skip
    rendered = notification_render(
        enqueue(order, EventType.DISPUTE_OPENED, cause="dp_test_1", dispute=dispute)
    )
    assert "Dispute opened" in rendered.subject
    assert "40.00 USD" in rendered.subject
    assert "2026-12-20" in rendered.text
    assert "fraudulent" in rendered.html


def test_without_staff_notify_emails_no_staff_email_is_queued(order: Order, settings: Any) -> None:
    settings.STAFF_NOTIFY_EMAILS = []
    with transaction.atomic():
        order_flag(orders_lock([order.pk])[order.pk], "amount_mismatch")
    dispute = {"id": "dp_test_2", "status": "needs_response", "amount": 1, "currency": "usd",
               "reason": "general", "evidence_due_by": None}  # fmt: skip
    with transaction.atomic():
        notify_enqueue(EventType.DISPUTE_OPENED, order, cause="dp_test_2",
                       objects={"dispute": dispute})  # fmt: skip
    assert not Notification.objects.exists()


@pytest.mark.parametrize(
    "event_type",
    [EventType.ORDER_FULFILLED, EventType.ORDER_CANCELED, EventType.ORDER_REFUNDED,
     EventType.DISPUTE_CLOSED],
)  # fmt: skip
def test_other_events_send_no_email(order: Order, event_type: EventType) -> None:
    with transaction.atomic():
        notify_enqueue(event_type, order, cause="x")
    assert not Notification.objects.exists()


def test_an_erased_address_is_never_mailed(order: Order) -> None:
    notification = enqueue(order, EventType.ORDER_PAID)
    Order.objects.filter(pk=order.pk).update(email=placeholder_email(41))
    with pytest.raises(NoRecipient, match="deleted their account"):
        notification_render(notification)


def test_an_email_whose_event_was_pruned_by_retention_cannot_be_written(order: Order) -> None:
    notification = enqueue(order, EventType.ORDER_PAID)
    OutboxEvent.objects.filter(pk=notification.event_id).update(payload={})
    notification.refresh_from_db()
    with pytest.raises(ContentErased, match="pruned by retention"):
        notification_render(notification)


def test_the_message_id_is_the_notifications_own_on_the_shops_domain(
    order: Order, settings: Any
) -> None:
    settings.PUBLIC_URL = "https://api.shop.example"
    notification = enqueue(order, EventType.ORDER_PAID)
    assert notification.message_id == f"<notification.{notification.pk}@api.shop.example>"
    notification.resend_count = 2
    assert notification.message_id == f"<notification.{notification.pk}.2@api.shop.example>"


def test_retention_erases_old_finished_emails_in_bounded_batches(order: Order) -> None:
    old = timezone.now() - timedelta(days=100)
    paid = enqueue(order, EventType.ORDER_PAID)
    refund = {"id": "r", "amount": 1, "currency": "usd", "status": "succeeded", "reason": None,
              "created_at": old.isoformat()}  # fmt: skip
    refunded = enqueue(order, EventType.REFUND_SUCCEEDED, cause="r", refund=refund)
    queued = enqueue(order, EventType.ORDER_EXPIRED)
    recent = enqueue(order, EventType.SHIPMENT_CREATED, cause="s",
                     shipment={"id": "s", "lines": []})  # fmt: skip
    content = {"recipient": "buyer@example.com", "subject": "S", "body_text": "T", "body_html": "H"}
    Notification.objects.filter(pk__in=[paid.pk, refunded.pk, queued.pk]).update(
        queued_at=old, **content
    )
    Notification.objects.filter(pk=paid.pk).update(status="sent")
    Notification.objects.filter(pk=refunded.pk).update(status="failed")
    Notification.objects.filter(pk=recent.pk).update(status="sent", **content)
    cutoff = timezone.now() - timedelta(days=90)

    assert notifications_prune(older_than=cutoff, batch_size=1) == 1
    assert notifications_prune(older_than=cutoff, batch_size=10) == 1
    assert notifications_prune(older_than=cutoff, batch_size=10) == 0
    rows = {n.pk: n for n in Notification.objects.all()}
    for pk in (paid.pk, refunded.pk):
        assert (rows[pk].recipient, rows[pk].body_text, rows[pk].body_html) == ("", "", "")
        assert rows[pk].subject == "S"
        assert rows[pk].pruned_at is not None
    assert rows[queued.pk].body_text == "T"  # still on its way
    assert rows[recent.pk].body_text == "T"  # not old


def test_the_admin_resend_queues_the_same_notification_again_and_records_it(
    order: Order, staff_client: Client
) -> None:
    notification = enqueue(order, EventType.ORDER_PAID)
    Notification.objects.filter(pk=notification.pk).update(status="sent", attempts=1)
    queued = enqueue(order, EventType.ORDER_EXPIRED)
    response = staff_client.post(
        "/admin/notify_emails/notification/",
        {"action": "resend", "_selected_action": [str(notification.pk), str(queued.pk)]},
        follow=True,
    )
    assert response.status_code == 200
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.resend_count) == (
        "queued",
        0,
        1,
    )
    assert notification.resent_by is not None
    assert notification.resent_by.username == "staff"
    assert jobs_for(notification) == 2  # the first send's and the resend's
    assert Notification.objects.get(pk=queued.pk).resend_count == 0  # already queued
    note = order.events.filter(kind=OrderEvent.Kind.NOTE).get()
    assert "resent the order confirmation" in note.message
    listed = staff_client.get("/admin/notify_emails/notification/", {"q": str(order.pk)[:8]})
    assert str(notification.pk) in listed.content.decode()
    page = staff_client.get(f"/admin/orders/order/{order.pk}/change/")
    assert "order confirmation" in page.content.decode()


def test_the_sweeper_gives_up_on_a_dead_claim_past_its_attempts_and_rejobs_a_lost_queue(
    order: Order,
) -> None:
    dead = enqueue(order, EventType.ORDER_PAID)
    lost = enqueue(order, EventType.ORDER_EXPIRED)
    long_ago = timezone.now() - timedelta(hours=1)
    Notification.objects.filter(pk=dead.pk).update(
        status="sending", attempts=MAX_ATTEMPTS, claimed_at=long_ago
    )
    Notification.objects.filter(pk=lost.pk).update(next_attempt_at=long_ago)
    ProcrastinateJob.objects.filter(task_name="notification_send").delete()

    assert notifications_requeue_stale() == 2
    dead.refresh_from_db()
    assert dead.status == "failed"
    assert "No attempts left" in dead.last_error
    assert jobs_for(dead) == 0
    assert jobs_for(lost) == 1
    assert notifications_requeue_stale() == 0  # the lost one is due again only later
