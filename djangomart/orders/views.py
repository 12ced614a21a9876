"""The built-in checkout return page: where Stripe sends the customer back from the
reference storefront, or when the shop has no frontend of its own (FRONTEND_URL unset),
and the order page the emails link to. In the storefront's look (its base template),
plain HTML, no JavaScript."""

import re
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from djangomart.core.errors import DomainError
from djangomart.fulfillment.selectors import shipments_of
from djangomart.money import format_amount
from djangomart.orders.models import Order
from djangomart.orders.ratelimit import sync_slot_take
from djangomart.orders.selectors import order_get_by_checkout_session
from djangomart.payments import checkout

# Stripe's ids are letters, digits and underscores; anything else (a NUL, a template
# Stripe did not fill in) cannot name a session, so the database is never asked.
_SESSION_ID = re.compile(r"^cs_[A-Za-z0-9_]{1,250}$")
# Seconds between reloads while the payment is being confirmed.
REFRESH_SECONDS = 3
# state -> (badge, page heading)
HEADINGS = {
    "paid": ("Paid", "Thank you, your payment was received"),
    "processing": ("Processing", "We are confirming your payment"),
    "unpaid": ("Not paid", "Your order is not paid"),
    "failed": ("Failed", "Your payment failed"),
    "canceled": ("Canceled", "Your order was canceled"),
    "expired": ("Expired", "Your checkout expired"),
    "not_found": ("", "Order not found"),
    "bad_request": ("", "This link is not valid"),
}


@dataclass(frozen=True)
class LineView:
    name: str
    quantity: int
    unit_price: str
    line_total: str


def _state(order: Order, *, checked: bool) -> str:
    """paid, processing, unpaid, failed, canceled or expired: what the customer is told."""
    if order.status in (Order.Status.PAID, Order.Status.FULFILLED):
        return "paid"
    if order.status != Order.Status.PENDING:
        return str(order.status)
    if order.payment_status == Order.PaymentStatus.PROCESSING or not checked:
        # Stripe has the payment but has not settled it, or could not be asked just now.
        return "processing"
    # Stripe says the session is still open: the customer left the payment page.
    return "unpaid"


def _sync(order: Order) -> bool:
    """Asks Stripe about a pending order now, with the API's own sync and rate limit.
    False when Stripe was not asked or could not answer: the page then says
    "processing" and reloads, and the webhook settles the order meanwhile."""
    if not sync_slot_take(order_id=order.pk):
        return False
    try:
        checkout.order_sync(order_id=order.pk)
    except DomainError:
        return False
    return True


def _page(request: HttpRequest, state: str, status: int = 200, **context: object) -> HttpResponse:
    badge, heading = HEADINGS[state]
    response = render(
        request,
        "orders/checkout_return.html",
        {"state": state, "badge": badge, "heading": heading, **context},
    )
    response.status_code = status
    return response


@never_cache
@require_safe
def checkout_return(request: HttpRequest) -> HttpResponse:
    session_id = request.GET.get("session_id", "")
    if not session_id:
        return _page(request, "not_found", 404)
    if not _SESSION_ID.match(session_id):
        return _page(request, "bad_request", 400)
    order = order_get_by_checkout_session(session_id=session_id)
    if order is None:
        return _page(request, "not_found", 404)
    checked = True
    if order.is_pending():
        checked = _sync(order)
        order = order_get_by_checkout_session(session_id=session_id) or order
    state = _state(order, checked=checked)
    lines = [
        LineView(
            name=ln.name,
            quantity=ln.quantity,
            unit_price=format_amount(ln.unit_price, order.currency),
            line_total=format_amount(ln.line_total, order.currency),
        )
        for ln in order.lines.all()
    ]
    # What happened since it was paid, for the emails link here (shipping notice,
    # refund notice): a guest has no other page of the order.
    shipments = shipments_of(order.pk) if state == "paid" else []
    refunded = (
        format_amount(order.amount_refunded, order.currency)
        if order.payment_status
        in (Order.PaymentStatus.REFUNDED, Order.PaymentStatus.PARTIALLY_REFUNDED)
        else None
    )
    return _page(
        request,
        state,
        order=order,
        lines=lines,
        total=format_amount(order.total, order.currency),
        refresh_seconds=REFRESH_SECONDS if state == "processing" else None,
        shipments=shipments,
        refunded=refunded,
        fully_refunded=order.payment_status == Order.PaymentStatus.REFUNDED,
    )
