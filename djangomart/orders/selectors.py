from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.utils.crypto import constant_time_compare

from djangomart.core.errors import NotFound
from djangomart.orders.models import Order


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
