"""Review 9 (emails with the admin's brand): the storefront makes any brand colours
readable (storefront/brand.py: on_primary / on_accent, black or white whichever
contrasts more), but the emails now take the admin's raw colours
(notify/emails/render.py context: primary_color=brand.primary, accent_color=
brand.accent) into templates that hard-code white text on them: the "View your order"
button (emails/_button.html: background accent, color #ffffff) and the header's shop
name (emails/base.html: background primary, color #ffffff). With the accent of the
project's own branded journey and of review 8's test (#ffd600) the order
confirmation's button is white on yellow, 1.5:1; a light primary makes the shop name
vanish. WCAG AA asks 4.5:1."""

import re

import pytest
from django.db import transaction

from djangomart.notify.emails.models import Notification
from djangomart.notify.emails.render import notification_render
from djangomart.notify.events import EventType
from djangomart.notify.services import notify_enqueue
from djangomart.orders.locks import orders_lock
from djangomart.storefront.brand import contrast
from djangomart.storefront.models import BrandSettings
from tests.payments.builders import order_build

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("demo_catalog")]

TEXT_AA = 4.5


def _confirmation_html() -> str:
    order = order_build(session_id="cs_test_review9brand0001")
    with transaction.atomic():
        notify_enqueue(
            EventType.ORDER_PAID, orders_lock([order.pk])[order.pk], cause="", objects={}
        )
    rendered = notification_render(Notification.objects.get(order=order))
    assert rendered.html
    return str(rendered.html)


def _pairs(html: str) -> list[tuple[str, str]]:
    """(background, color) of every inline style naming both, in order."""
    found = []
    for style in re.findall(r'style="([^"]*)"', html):
        bg = re.search(r"background:\s*(#[0-9a-fA-F]{3,6})", style)
        fg = re.search(r"(?<![-\w])color:\s*(#[0-9a-fA-F]{3,6})", style)
        if bg and fg:
            found.append((bg.group(1), fg.group(1)))
    return found


def test_the_order_confirmations_button_is_readable_with_a_light_brand_accent() -> None:
    BrandSettings.objects.create(pk=1, accent_color="#ffd600", primary_color="#004d40")
    html = _confirmation_html()
    button = re.search(r'<a href="[^"]*" style="([^"]*)"', html)
    assert button is not None
    ((background, colour),) = _pairs(f'style="{button.group(1)}"')
    assert contrast(background, colour) >= TEXT_AA, (background, colour)


def test_the_emails_header_name_is_readable_with_a_light_brand_primary() -> None:
    BrandSettings.objects.create(pk=1, shop_name="Nordic Tees", primary_color="#f5f5f5")
    html = _confirmation_html()
    header = re.search(
        r'<td style="background:([^;"]+);[^"]*">\s*<span style="color:([^;"]+);', html
    )
    assert header is not None, html[:2000]
    assert contrast(header.group(1), header.group(2)) >= TEXT_AA, header.groups()
