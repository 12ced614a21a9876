"""What an email says: its subject, plain text and HTML, rendered from the templates
under templates/emails/ with the fact's payload (OutboxEvent.payload, frozen in the
fact's transaction) and the shop's branding; and to whom it goes, read when it is sent."""

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

from djangomart.accounts.deletion import PLACEHOLDER_DOMAIN
from djangomart.money import format_amount
from djangomart.notify.emails.models import Notification, NotificationKind
from djangomart.orders.models import Order
from djangomart.storefront.brand import brand_current

SESSION_PLACEHOLDER = "{CHECKOUT_SESSION_ID}"


class Unsendable(Exception):
    """The email cannot be sent, now or later: it fails at once, with this message, and
    is not retried."""


class NoRecipient(Unsendable):
    """Nobody to send it to."""


class ContentErased(Unsendable):
    """Retention emptied the fact's payload, which the email is written from."""


@dataclass(frozen=True)
class Rendered:
    recipients: list[str]
    subject: str
    text: str
    html: str


def recipients(notification: Notification, order: Order) -> list[str]:
    """Read at send time: the order's email as it is now (an account deleted since the
    fact was erased by accounts.deletion, which leaves a placeholder that is never a
    mailbox), or STAFF_NOTIFY_EMAILS as configured now."""
    if notification.is_for_staff():
        if not settings.STAFF_NOTIFY_EMAILS:
            raise NoRecipient("STAFF_NOTIFY_EMAILS is empty: no staff address to send to.")
        return list(settings.STAFF_NOTIFY_EMAILS)
    email = (order.email or "").strip()
    if not email:
        raise NoRecipient("The order has no email address.")
    if email.lower().endswith("@" + PLACEHOLDER_DOMAIN):
        raise NoRecipient(
            "The customer deleted their account: the order's email address was erased."
        )
    return [email]


def order_status_url(order: Order) -> str | None:
    """The page the customer was sent back to after paying: the order's own success_url
    (the storefront's, or the built-in /checkout/return) with its Checkout Session id,
    which is what that page finds the order by. None for an order without a session."""
    session_id = order.stripe_checkout_session_id
    if not session_id:
        return None
    template = order.success_url
    if SESSION_PLACEHOLDER not in template:
        # A client's own success_url without Stripe's template: the shop's default page.
        template = settings.CHECKOUT_SUCCESS_URL
    return template.replace(SESSION_PLACEHOLDER, quote(session_id, safe=""))


def admin_order_url(order: Order) -> str:
    return settings.PUBLIC_URL + reverse("admin:orders_order_change", args=[order.pk])


def _web_url(value: Any) -> str | None:
    """A link only when it is one a mail client opens safely (http or https)."""
    if isinstance(value, str) and urlsplit(value).scheme in ("http", "https"):
        return value
    return None


def _money(amount: Any, currency: str) -> str:
    return format_amount(int(amount or 0), currency)


def short_id(order_id: Any) -> str:
    return str(order_id).split("-")[0].upper()


def _order_context(data: dict[str, Any]) -> dict[str, Any]:
    order = data["order"]
    currency = str(order["currency"])
    return {
        "id": order["id"],
        "short_id": short_id(order["id"]),
        "status": order["status"],
        "total": _money(order["total"], currency),
        "lines": [
            {
                "name": line["name"],
                "sku": line["sku"],
                "quantity": line["quantity"],
                "unit_price": _money(line["unit_price"], currency),
                "line_total": _money(line["line_total"], currency),
            }
            for line in order.get("lines", [])
        ],
    }


def context(notification: Notification, order: Order) -> dict[str, Any]:
    payload = notification.event.payload
    data: dict[str, Any] = payload["data"]
    brand = brand_current()
    logo_url = brand.logo_url
    if logo_url.startswith("/"):  # the admin's uploaded logo: absolute, for a mail client
        logo_url = settings.PUBLIC_URL + logo_url
    ctx: dict[str, Any] = {
        "shop": {
            "name": brand.shop_name,
            "logo_url": logo_url,
            "primary_color": brand.primary,
            "accent_color": brand.accent,
            # Text on those colours, and the primary as text on white: readable (AA)
            # whatever colours the brand picked, as in the storefront.
            "on_primary": brand.on_primary,
            "on_accent": brand.on_accent,
            "primary_text": brand.primary_text,
        },
        "event_type": payload["type"],
        "order": _order_context(data),
        "order_url": order_status_url(order),
    }
    if notification.kind == NotificationKind.SHIPPING_NOTICE:
        shipment = data["shipment"]
        ctx["shipment"] = {
            "carrier": shipment.get("carrier") or "",
            "tracking_number": shipment.get("tracking_number") or "",
            "tracking_url": _web_url(shipment.get("tracking_url")),
            "lines": shipment.get("lines") or [],
        }
    elif notification.kind == NotificationKind.REFUND_NOTICE:
        refund = data["refund"]
        ctx["refund"] = {"amount": _money(refund["amount"], str(refund["currency"]))}
    elif notification.kind == NotificationKind.STAFF_NEEDS_ATTENTION:
        ctx["attention"] = data.get("attention") or {}
        ctx["admin_url"] = admin_order_url(order)
    elif notification.kind == NotificationKind.STAFF_DISPUTE_OPENED:
        dispute = data["dispute"]
        ctx["dispute"] = {
            "id": dispute["id"],
            "amount": _money(dispute["amount"], str(dispute["currency"])),
            "reason": dispute.get("reason") or "",
            "evidence_due_by": dispute.get("evidence_due_by") or "",
        }
        ctx["admin_url"] = admin_order_url(order)
    return ctx


def notification_render(notification: Notification) -> Rendered:
    """Raises Unsendable: NoRecipient when there is nobody to send it to, ContentErased
    when retention emptied the event's payload."""
    order = Order.objects.get(pk=notification.order_id)
    to = recipients(notification, order)
    if not notification.event.payload.get("data"):
        raise ContentErased(
            "The event this email tells about was pruned by retention: it can no longer be written."
        )
    ctx = context(notification, order)
    base = f"emails/{notification.kind}"
    # One line: a newline in a header would end it.
    subject = " ".join(render_to_string(f"{base}.subject.txt", ctx).split())
    ctx["subject"] = subject
    return Rendered(
        recipients=to,
        subject=subject,
        text=render_to_string(f"{base}.txt", ctx),
        html=render_to_string(f"{base}.html", ctx),
    )
