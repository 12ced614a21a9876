"""The admin of outbound webhooks: endpoints (URL policy, event types, the secret shown),
the deliveries list with its attempt log, and resend; and the job worker split."""

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone
from procrastinate.contrib.django import app as procrastinate_app
from procrastinate.contrib.django.models import ProcrastinateJob

from devtools.run import JOB_QUEUES, OUTBOUND_WEBHOOKS_QUEUE
from djangomart.notify.emails.models import Notification
from djangomart.notify.events import EventType
from djangomart.notify.services import notify_enqueue
from djangomart.notify.webhooks.models import WebhookDelivery, WebhookEndpoint
from djangomart.notify.webhooks.services import PRUNED, webhook_delivery_send
from djangomart.payments.retention import outbox_events_prune
from tests.notify.webhooks.conftest import endpoint_make
from tests.notify.webhooks.receivers import Receiver
from tests.payments.builders import order_build

pytestmark = pytest.mark.django_db

ADD = "/admin/notify_webhooks/webhookendpoint/add/"


def add(staff_client: Client, url: str, types: list[str] | None = None) -> Any:
    return staff_client.post(
        ADD,
        {"url": url, "event_types": types or ["order.paid"], "enabled": "on", "description": "ERP"},
    )


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://93.184.215.14/hook", "must be https"),
        ("https://10.1.2.3/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "private"),
        ("https://127.0.0.1:8000/hook", "private"),
        ("https://localhost/hook", "private"),
        ("https://[::1]/hook", "private"),
        ("https://user:pw@93.184.215.14/hook", "Credentials"),
        ("ftp://93.184.215.14/hook", "Give an http(s) URL"),
    ],
)
def test_an_endpoint_url_on_the_shops_own_network_or_not_https_is_refused(
    staff_client: Client, settings: Any, url: str, why: str
) -> None:
    settings.OUTBOUND_WEBHOOK_ALLOW_PRIVATE = False
    response = add(staff_client, url)
    assert response.status_code == 200  # the form again, with its error
    assert why in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_an_unknown_event_type_is_refused(staff_client: Client) -> None:
    response = add(staff_client, "https://93.184.215.14/hook", ["order.paid", "order.shipped"])
    assert response.status_code == 200
    assert "order.shipped is not one of the available choices" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_a_public_https_endpoint_is_saved_with_a_secret_shown_on_its_page(
    staff_client: Client, settings: Any
) -> None:
    settings.OUTBOUND_WEBHOOK_ALLOW_PRIVATE = False
    response = add(staff_client, "https://93.184.215.14/hook", ["order.paid", "dispute.opened"])
    assert response.status_code == 302, response.content.decode()
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.event_types == ["order.paid", "dispute.opened"]
    assert endpoint.secret.startswith("whsec_")
    assert len(endpoint.secret) == 6 + 64
    page = staff_client.get(f"/admin/notify_webhooks/webhookendpoint/{endpoint.pk}/change/")
    assert endpoint.secret in page.content.decode()


def staff_with(*codenames: str) -> Client:
    """A staff member (not a superuser) with only these permissions, logged in."""
    user = User.objects.create_user(codenames[-1], f"{codenames[-1]}@example.com", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def test_the_secret_is_shown_only_to_staff_who_may_change_endpoints(
    staff_client: Client,
) -> None:
    endpoint = endpoint_make("https://93.184.215.14/hook")
    page = f"/admin/notify_webhooks/webhookendpoint/{endpoint.pk}/change/"
    viewer = staff_with("view_webhookendpoint")
    editor = staff_with("view_webhookendpoint", "change_webhookendpoint")

    seen = viewer.get(page)
    assert seen.status_code == 200
    assert endpoint.url in seen.content.decode()  # the page is there, the secret is not
    assert endpoint.secret[6:-4] not in seen.content.decode()
    assert f"whsec_…{endpoint.secret[-4:]} (hidden" in seen.content.decode()
    listing = viewer.get("/admin/notify_webhooks/webhookendpoint/")
    assert listing.status_code == 200
    assert endpoint.secret[6:-4] not in listing.content.decode()

    assert endpoint.secret in editor.get(page).content.decode()
    assert endpoint.secret in staff_client.get(page).content.decode()  # a superuser
    # The add page shows none: the secret is made when the endpoint is saved.
    assert "whsec_" not in staff_client.get(ADD).content.decode()


@pytest.mark.usefixtures("demo_catalog")
def test_resending_a_delivery_whose_event_was_pruned_is_refused_with_an_error(
    staff_client: Client, receiver: Any
) -> None:
    hook: Receiver = receiver()
    endpoint_make(hook.url)
    event = notify_enqueue(EventType.ORDER_PAID, order_build())
    assert event is not None
    delivery = WebhookDelivery.objects.get()
    assert webhook_delivery_send(delivery_id=delivery.pk) == "delivered"
    Notification.objects.filter(event=event).update(status="sent")
    assert outbox_events_prune(older_than=timezone.now() + timedelta(seconds=1), batch_size=10)
    jobs = ProcrastinateJob.objects.filter(task_name="webhook_delivery_send").count()

    action = {"action": "resend", "_selected_action": [str(delivery.pk)]}
    response = staff_client.post("/admin/notify_webhooks/webhookdelivery/", action, follow=True)

    shown = [(m.level_tag, m.message) for m in response.context["messages"]]
    assert shown == [("error", f"Delivery {delivery.pk} not resent: {PRUNED}")]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.cycle) == ("delivered", 1)
    assert ProcrastinateJob.objects.filter(task_name="webhook_delivery_send").count() == jobs
    assert len(hook.requests) == 1


@pytest.mark.usefixtures("demo_catalog")
def test_the_deliveries_list_the_attempt_log_and_resend(
    staff_client: Client, receiver: Any
) -> None:
    hook: Receiver = receiver()
    endpoint_make(hook.url)
    event = notify_enqueue(EventType.ORDER_PAID, order_build())
    assert event is not None
    delivery = WebhookDelivery.objects.get()
    assert webhook_delivery_send(delivery_id=delivery.pk) == "delivered"

    listing = staff_client.get("/admin/notify_webhooks/webhookdelivery/")
    assert listing.status_code == 200
    assert "order.paid" in listing.content.decode()
    page = staff_client.get(f"/admin/notify_webhooks/webhookdelivery/{delivery.pk}/change/")
    assert page.status_code == 200
    assert '{"ok": true}' in page.content.decode().replace("&quot;", '"')  # the answer logged

    action = {"action": "resend", "_selected_action": [str(delivery.pk)]}
    response = staff_client.post("/admin/notify_webhooks/webhookdelivery/", action, follow=True)
    assert "queued to be sent again" in response.content.decode()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.cycle) == ("pending", 2)
    # Pending again: a second resend is refused with the reason.
    response = staff_client.post("/admin/notify_webhooks/webhookdelivery/", action, follow=True)
    assert "still being delivered" in response.content.decode()
    assert webhook_delivery_send(delivery_id=delivery.pk) == "delivered"
    assert len(hook.requests) == 2


def test_the_job_worker_takes_every_queue_but_the_outbound_webhooks_one() -> None:
    # procrastinate's own builtin tasks are not deferred by DjangoMart.
    queues = {task.queue for task in procrastinate_app.tasks.values()} - {"builtin"}
    job_queues = set(JOB_QUEUES.split(","))
    assert OUTBOUND_WEBHOOKS_QUEUE not in job_queues
    assert queues <= job_queues | {OUTBOUND_WEBHOOKS_QUEUE}
    assert procrastinate_app.tasks["webhook_delivery_send"].queue == OUTBOUND_WEBHOOKS_QUEUE
