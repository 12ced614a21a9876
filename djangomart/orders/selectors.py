from collections.abc import Iterable
from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Max
from django.utils.crypto import constant_time_compare

from djangomart.core.errors import NotFound
from djangomart.orders.models import Order, OrderEvent


def order_get_for_client(
    *, order_id: UUID, token: str | None, user: AbstractBaseUser | AnonymousUser
) -> Order:
    """The order, for its guest (by access token) or its logged-in owner; anyone else
    gets NotFound, so that order ids cannot be probed."""
    order = Order.objects.prefetch_related("lines").filter(pk=order_id).first()
    if order is not None:
        if token and constant_time_compare(token, order.access_token):
            return order
        if user.is_authenticated and order.customer_id == user.pk:
            return order
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
