"""Sending: once per notification, whatever repeats; the worker that dies after the mail
server accepted a message is the one documented window; failures retry with backoff.

Transactional: the claim is committed before the mail server is spoken to, and the
worker (tests/payments/conftest.py run_jobs) sees only committed work."""

import smtplib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone
from procrastinate.contrib.django.models import ProcrastinateJob

from djangomart.accounts.deletion import placeholder_email
from djangomart.catalog.demo import demo_catalog_seed
from djangomart.notify.emails.models import Notification
from djangomart.notify.emails.services import (
    MAX_ATTEMPTS,
    notification_resend,
    notification_send,
    notifications_requeue_stale,
)
from djangomart.notify.events import EventType
from djangomart.notify.services import notify_enqueue
from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order
from djangomart.payments.checkout import checkout_session_apply
from tests.notify.emails.conftest import emails_counted
from tests.payments.builders import new_intent_id, order_build
from tests.payments.conftest import (
    event_json,
    intent_object,
    jobs_run,
    post_event,
    run_jobs,
    session_object,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("queued_jobs_removed"),
]

HERE = "tests.notify.emails.test_email_sending"


class WorkerKilled(BaseException):
    """The process ending under the worker (SIGKILL, OOM): not an error any code handles."""


class DiesAfterAccepting(EmailBackend):
    """The mail server accepts the message (it is in the outbox), then the worker dies
    before it can record that."""

    def send_messages(self, messages: Any) -> int:
        super().send_messages(messages)
        raise WorkerKilled


class FailsTwice(EmailBackend):
    failures = 0

    def send_messages(self, messages: Any) -> int:
        if FailsTwice.failures < 2:
            FailsTwice.failures += 1
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        return super().send_messages(messages)


class AlwaysDown(EmailBackend):
    def send_messages(self, messages: Any) -> int:
        raise ConnectionRefusedError(111, "Connection refused")


@pytest.fixture
def order() -> Order:
    demo_catalog_seed()
    return order_build(intent_id=new_intent_id())


def confirmation_queued(order: Order) -> Notification:
    with transaction.atomic():
        notify_enqueue(EventType.ORDER_PAID, orders_lock([order.pk])[order.pk])
    return Notification.objects.get(order=order)


def scheduled_jobs(notification: Notification) -> list[Any]:
    return list(
        ProcrastinateJob.objects.filter(
            task_name="notification_send",
            args={"notification_id": str(notification.pk)},
            status="todo",
        )
        .order_by("id")
        .values_list("scheduled_at", flat=True)
    )


def make_due(notification: Notification) -> None:
    ProcrastinateJob.objects.filter(
        task_name="notification_send", args={"notification_id": str(notification.pk)}
    ).update(scheduled_at=timezone.now())


def test_every_duplicate_of_the_payment_sends_one_confirmation(
    order: Order, client: Client, stripe_settings: Any
) -> None:
    session = session_object(order)
    completed = event_json("checkout.session.completed", session)
    for _ in range(3):  # Stripe delivering the same event again
        assert post_event(client, completed).status_code == 200
    intent = intent_object(order, str(order.stripe_payment_intent_id))
    assert post_event(client, event_json("payment_intent.succeeded", intent)).status_code == 200
    run_jobs()
    with transaction.atomic():  # the landing page's sync, applying the same session again
        checkout_session_apply(orders_lock([order.pk])[order.pk], session)
    assert post_event(client, completed).status_code == 200  # and a late repeat
    run_jobs()

    order.refresh_from_db()
    assert order.status == "paid"
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["buyer@example.com"]
    assert "confirmed" in mail.outbox[0].subject
    notification = Notification.objects.get(order=order)
    assert (notification.status, notification.attempts) == ("sent", 1)
    html = mail.outbox[0].alternatives[0]  # type: ignore[attr-defined]
    assert html[1] == "text/html"
    assert "40.00 USD" in html[0]


def test_a_worker_killed_after_the_server_accepted_sends_again_with_the_same_message_id(
    order: Order, settings: Any
) -> None:
    notification = confirmation_queued(order)
    settings.EMAIL_BACKEND = f"{HERE}.DiesAfterAccepting"
    with pytest.raises(WorkerKilled):
        notification_send(notification_id=notification.pk)
    assert Notification.objects.get(pk=notification.pk).status == "sending"
    # A claim younger than the timeout may be a slow send still running: left alone.
    assert notifications_requeue_stale() == 0

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    later = timezone.now() + timedelta(minutes=11)
    assert notifications_requeue_stale(now=later) == 1
    assert Notification.objects.get(pk=notification.pk).status == "queued"
    jobs_run()  # the job queued at first finds it claimed, the sweeper's sends it

    assert len(mail.outbox) == 2
    ids = {m.extra_headers["Message-ID"] for m in mail.outbox}
    assert ids == {notification.message_id}
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("sent", 2)
    assert "gets it twice" in notification.last_error
    # Sent is final: neither the sweeper nor a stray job sends it again.
    assert notifications_requeue_stale(now=later + timedelta(hours=1)) == 0
    assert notification_send(notification_id=notification.pk) == "sent"
    assert len(mail.outbox) == 2


def test_two_workers_racing_for_one_notification_send_it_once(order: Order) -> None:
    notification = confirmation_queued(order)
    barrier = threading.Barrier(2)

    def run() -> str:
        try:
            barrier.wait()
            return notification_send(notification_id=notification.pk)
        finally:
            connection.close()  # the thread's own connection

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(run) for _ in range(2)]
    outcomes = sorted(f.result() for f in futures)
    assert len(mail.outbox) == 1
    assert outcomes in (["sending", "sent"], ["sent", "sent"])
    assert Notification.objects.get(pk=notification.pk).attempts == 1


def test_an_smtp_failure_is_retried_with_backoff_then_sent(order: Order, settings: Any) -> None:
    notification = confirmation_queued(order)
    FailsTwice.failures = 0
    settings.EMAIL_BACKEND = f"{HERE}.FailsTwice"
    retries_before = emails_counted("order_confirmation", "failed")
    sent_before = emails_counted("order_confirmation", "sent")

    jobs_run()
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("queued", 1)
    assert notification.last_error.startswith("Attempt 1: SMTPServerDisconnected")
    [due] = scheduled_jobs(notification)
    assert timedelta(seconds=50) < due - timezone.now() <= timedelta(seconds=60)
    jobs_run()  # not due yet: nothing happens
    assert Notification.objects.get(pk=notification.pk).attempts == 1

    make_due(notification)
    jobs_run()
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("queued", 2)
    [due] = scheduled_jobs(notification)
    assert timedelta(seconds=290) < due - timezone.now() <= timedelta(seconds=300)

    make_due(notification)
    jobs_run()
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("sent", 3)
    assert notification.last_error.startswith("Attempt 2: SMTPServerDisconnected")
    assert len(mail.outbox) == 1
    assert emails_counted("order_confirmation", "failed") - retries_before == 2
    assert emails_counted("order_confirmation", "sent") - sent_before == 1


def test_after_the_last_attempt_the_email_is_failed_with_the_error(
    order: Order, settings: Any
) -> None:
    notification = confirmation_queued(order)
    settings.EMAIL_BACKEND = f"{HERE}.AlwaysDown"
    failed_before = emails_counted("order_confirmation", "dead")
    outcomes = [notification_send(notification_id=notification.pk) for _ in range(MAX_ATTEMPTS)]
    assert outcomes == ["queued"] * (MAX_ATTEMPTS - 1) + ["failed"]
    notification.refresh_from_db()
    assert notification.attempts == MAX_ATTEMPTS
    assert notification.last_error == (
        f"Attempt {MAX_ATTEMPTS}: ConnectionRefusedError: [Errno 111] Connection refused"
    )
    assert emails_counted("order_confirmation", "dead") - failed_before == 1
    assert notification_send(notification_id=notification.pk) == "failed"  # final


def test_an_order_without_a_usable_address_fails_at_once_and_is_not_retried(
    order: Order,
) -> None:
    notification = confirmation_queued(order)
    Order.objects.filter(pk=order.pk).update(email=placeholder_email(7))
    jobs_run()
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("failed", 1)
    assert "deleted their account" in notification.last_error
    assert scheduled_jobs(notification) == []
    assert mail.outbox == []


def test_a_staff_resend_is_sent_again_as_a_new_message(order: Order) -> None:
    notification = confirmation_queued(order)
    jobs_run()
    staff = User.objects.create_user("ops", "ops@shop.example", is_staff=True)
    notification_resend(notification_id=notification.pk, user=staff)
    jobs_run()
    assert len(mail.outbox) == 2
    first, second = (m.extra_headers["Message-ID"] for m in mail.outbox)
    assert first != second
    assert Notification.objects.get(pk=notification.pk).status == "sent"


def test_an_email_that_cannot_be_rendered_is_retried_not_left_sending(order: Order) -> None:
    with transaction.atomic():  # a shipment event breaking the contract: no "shipment"
        notify_enqueue(EventType.SHIPMENT_CREATED, orders_lock([order.pk])[order.pk], cause="1")
    notification = Notification.objects.get(order=order)
    assert notification_send(notification_id=notification.pk) == "queued"
    notification.refresh_from_db()
    assert notification.last_error == "Attempt 1: KeyError: 'shipment'"
    # The first job (never run here: the test sent it itself) and the retry, a minute on.
    assert [due is None for due in scheduled_jobs(notification)] == [True, False]
    assert mail.outbox == []
