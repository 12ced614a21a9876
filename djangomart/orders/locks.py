"""Row locks, always taken in one global order so that no two transactions deadlock:
the Stripe event's claim (payments.inbox), then orders, then variants; each set in
primary-key order. Variants are locked by the catalog's helper (also used by the
admin's stock changes), so there is one way to lock them."""

from collections.abc import Iterable
from uuid import UUID

from djangomart.catalog import services as catalog_services
from djangomart.catalog.models import Variant
from djangomart.orders.models import Order


def orders_lock(ids: Iterable[UUID]) -> dict[UUID, Order]:
    """Locks the orders in pk order and returns them freshly read. Inside atomic()."""
    rows = Order.objects.filter(pk__in=list(ids)).order_by("pk").select_for_update(of=("self",))
    return {order.pk: order for order in rows}


def variants_lock(ids: Iterable[int]) -> dict[int, Variant]:
    """Locks the variants in pk order (after any order locks). Inside atomic()."""
    return catalog_services.variants_lock(ids)
