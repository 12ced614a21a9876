from collections.abc import Iterable
from typing import NamedTuple
from uuid import UUID

from django.contrib.auth.models import User
from django.db.models import Max, Prefetch, prefetch_related_objects
from django.utils.crypto import constant_time_compare

from djangomart.core.errors import NotFound
from djangomart.orders.models import Order, OrderEvent
from djangomart.payments.models import Dispute, Refund


def order_for_api(order: Order) -> Order:
    """`order` with what the order API shows besides its row: lines, refunds and
    disputes (oldest first), one query each whatever their number."""
    prefetch_related_objects(
        [order],
        "lines",
        Prefetch("refunds", queryset=Refund.objects.order_by("created_at", "pk")),
        Prefetch("disputes", queryset=Dispute.objects.order_by("created_at", "pk")),
    )
    return order


def order_get_for_client(*, order_id: UUID, token: str | None, customer: User | None) -> Order:
    """The order, for its guest (by access token) or its logged-in owner; anyone else
    gets NotFound, so that order ids cannot be probed."""
    order = Order.objects.filter(pk=order_id).first()
    if order is not None:
        # Its lines, refunds and disputes are read only for whoever may see them.
        if token and constant_time_compare(token, order.access_token):
            return order_for_api(order)
        if customer is not None and order.customer_id == customer.pk:
            return order_for_api(order)
    raise NotFound("No such order.")


def order_get_by_checkout_session(*, session_id: str) -> Order | None:
    """The order a Checkout Session was created for, with its lines (two queries)."""
    return (
        Order.objects.prefetch_related("lines")
        .filter(stripe_checkout_session_id=session_id)
        .first()
    )


def orders_timeline_seen(order_ids: Iterable[UUID]) -> dict[UUID, int]:
    """How far a page showing these orders has seen their timelines (the last entry's
    id, 0 for none), read before the orders themselves: a flag raised after the page was
    shown is later than this, and services.order_attention_resolve does not clear it.
    One query."""
    ids = list(order_ids)
    rows = (
        OrderEvent.objects.filter(order_id__in=ids)
        .values("order_id")
        .annotate(last=Max("pk"))
        .values_list("order_id", "last")
    )
    seen = dict.fromkeys(ids, 0)
    seen.update(dict(rows))
    return seen


class CustomerOrderPage(NamedTuple):
    orders: list[Order]
    order_count: int


def order_page_for_customer(*, customer: User, page: int, page_size: int) -> CustomerOrderPage:
    """One page of the customer's own orders, newest first (pk breaks ties, so that pages
    never repeat or skip an order), each with what order_for_api adds; the count is of
    all their orders. Five queries whatever the page's size."""
    orders = (
        Order.objects.filter(customer=customer)
        .order_by("-created_at", "-pk")
        .prefetch_related(
            "lines",
            Prefetch("refunds", queryset=Refund.objects.order_by("created_at", "pk")),
            Prefetch("disputes", queryset=Dispute.objects.order_by("created_at", "pk")),
        )
    )
    start = (page - 1) * page_size
    return CustomerOrderPage(
        orders=list(orders[start : start + page_size]),
        order_count=Order.objects.filter(customer=customer).count(),
    )
