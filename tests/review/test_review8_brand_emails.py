"""Review 8 (issue 12): the brand a shop owner sets in the admin (Storefront > Brand
settings) is documented as "The storefront's (and the emails') look"
(storefront/models.py BrandSettings), and the issue's white-label SHOP_NAME, logo and
colours are "set in the admin ... or by environment". The customer emails
(notify/emails/render.py context) still read settings.SHOP_NAME / SHOP_*_COLOR only:
after staff rename the shop in the admin, the storefront says the new name and the
order confirmation, whose link opens that storefront, says the old one."""

import pytest
from django.db import transaction
from django.test import Client

from djangomart.notify.emails.models import Notification
from djangomart.notify.emails.render import notification_render
from djangomart.notify.events import EventType
from djangomart.notify.services import notify_enqueue
from djangomart.orders.locks import orders_lock
from tests.payments.builders import order_build

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("demo_catalog")]


def test_the_admins_shop_name_reaches_the_order_confirmation(
    admin_client: Client, client: Client
) -> None:
    admin_client.get("/admin/storefront/brandsettings/", follow=True)  # creates the row
    response = admin_client.post(
        "/admin/storefront/brandsettings/1/change/",
        {"shop_name": "Nordic Tees", "primary_color": "#004d40", "accent_color": "#ffd600",
         "footer_text": ""},
    )  # fmt: skip
    assert response.status_code == 302
    assert "Nordic Tees" in client.get("/shop/").content.decode()

    order = order_build(session_id="cs_test_review8brand0001")
    with transaction.atomic():
        notify_enqueue(
            EventType.ORDER_PAID, orders_lock([order.pk])[order.pk], cause="", objects={}
        )
    rendered = notification_render(Notification.objects.get(order=order))

    assert "Nordic Tees" in rendered.subject, rendered.subject
    assert "Nordic Tees" in rendered.text
