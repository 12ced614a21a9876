"""URLs that Django's URLField accepts but url_policy.endpoint_url_resolve cannot parse
or look up raise out of it, neither UrlRefused nor OSError:
- a port past 65535 (`https://93.184.215.14:99999/hook`): Django's URLValidator allows
  up to 5 digits, `urlsplit(url).port` raises ValueError (url_policy.py, `parts.port`);
- a non-ASCII label of at most 63 characters whose IDNA (punycode) form is longer than
  63: Django's validator counts characters, socket.getaddrinfo's idna codec raises
  UnicodeError, which `_addresses` does not catch (it catches OSError only).
So the admin's add form answers 500 instead of the form with an error, and an attempt
to such an endpoint (saved while OUTBOUND_WEBHOOK_ALLOW_PRIVATE was on, which skips the
check) raises out of webhook_post, which promises never to: the delivery is left
claimed with no attempt logged, and is claimed again after each lease, forever."""

from typing import Any

import pytest
from django.test import Client

from djangomart.notify.events import EventType
from djangomart.notify.services import notify_enqueue
from djangomart.notify.webhooks.models import WebhookDelivery, WebhookEndpoint
from djangomart.notify.webhooks.sender import webhook_post
from djangomart.notify.webhooks.services import webhook_delivery_send
from tests.payments.builders import order_build

pytestmark = pytest.mark.django_db

ADD = "/admin/notify_webhooks/webhookendpoint/add/"

ODD_URLS = [
    pytest.param("https://93.184.215.14:99999/hook", id="port out of range"),
    pytest.param("https://" + "é" * 60 + ".example/hook", id="label too long once punycoded"),
]


@pytest.mark.parametrize("url", ODD_URLS)
def test_an_odd_endpoint_url_gets_the_form_with_an_error_not_a_500(
    staff_client: Client, settings: Any, url: str
) -> None:
    settings.OUTBOUND_WEBHOOK_ALLOW_PRIVATE = False
    staff_client.raise_request_exception = False

    response = staff_client.post(
        ADD, {"url": url, "event_types": ["order.paid"], "enabled": "on", "description": "ERP"}
    )

    assert response.status_code == 200, f"the add form answered {response.status_code}"
    assert "errorlist" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("url", ODD_URLS)
def test_webhook_post_answers_a_refusal_for_an_odd_url_instead_of_raising(
    settings: Any, url: str
) -> None:
    settings.OUTBOUND_WEBHOOK_ALLOW_PRIVATE = False
    try:
        answer = webhook_post(url=url, body=b"{}", headers={})
    except Exception as exc:  # noqa: BLE001 - the point: it must not raise
        pytest.fail(f"webhook_post raised {type(exc).__name__}: {exc}")
    assert answer.status_code is None
    assert answer.error


@pytest.mark.usefixtures("demo_catalog")
@pytest.mark.parametrize("url", ODD_URLS)
def test_a_delivery_to_an_odd_url_is_a_logged_failed_attempt_not_left_claimed(
    settings: Any, url: str
) -> None:
    # A row saved before the URL policy read ports and names this strictly (in
    # development, unchecked): no validation now, as it was then.
    WebhookEndpoint.objects.create(url=url, event_types=["order.paid"])
    settings.OUTBOUND_WEBHOOK_ALLOW_PRIVATE = False  # then the shop goes live
    assert notify_enqueue(EventType.ORDER_PAID, order_build()) is not None
    delivery = WebhookDelivery.objects.get()

    try:
        outcome = webhook_delivery_send(delivery_id=delivery.pk)
    except Exception as exc:  # noqa: BLE001
        outcome = f"raised {type(exc).__name__}: {exc}"

    delivery.refresh_from_db()
    assert delivery.claim_token is None, f"the delivery is left claimed ({outcome})"
    assert outcome == "failed", outcome
    assert delivery.log.count() == 1, "no attempt was logged"
    assert delivery.last_error.startswith("URL refused"), delivery.last_error
