"""An order's stock: checkout reserves its units (catalog.services.stock_reserve); when
the order is paid the reservation becomes a sale (on_hand and reserved both go down,
with a `sale` movement in the ledger); when it fails, expires or is canceled the
reservation is dropped. transitions.apply calls these, so each runs once per order:
an order leaves `pending` once."""

from djangomart.catalog import services as catalog_services
from djangomart.orders.locks import variants_lock
from djangomart.orders.models import Order, OrderEvent


def _quantities(order: Order) -> dict[int, int]:
    quantities: dict[int, int] = {}
    for line in order.lines.all():
        quantities[line.variant_id] = quantities.get(line.variant_id, 0) + line.quantity
    return quantities


def stock_release(order: Order) -> None:
    """Drops the order's reservation, once. The order must be locked."""
    if order.stock_released:
        return
    quantities = _quantities(order)
    variants_lock(quantities)
    catalog_services.stock_unreserve(quantities)
    order.stock_released = True
    order.save(update_fields=["stock_released", "updated_at"])
    OrderEvent.objects.create(order=order, kind=OrderEvent.Kind.NOTE, message="Stock released.")


def stock_sell(order: Order) -> None:
    """Turns the paid order's reservation into a sale, in the caller's transaction. The
    order must be locked; the ledger's unique (order, variant, sale) refuses a second
    sale of the same order."""
    if order.stock_released:
        # Unreachable through the transition table (released orders are never paid);
        # selling units that are no longer reserved would break the reserved count.
        return
    quantities = _quantities(order)
    variants_lock(quantities)
    # The ledger's `sale` rows (linked to the order) are the record; the timeline
    # already shows the transition to paid.
    catalog_services.stock_sell(quantities, order_id=order.pk)
