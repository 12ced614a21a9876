"""An order's stock: checkout reserves its units (catalog.services.stock_reserve); when
the order is paid the reservation becomes a sale (on_hand and reserved both go down,
with a `sale` movement in the ledger); when it fails, expires or is canceled the
reservation is dropped. transitions.apply calls these, so each runs once per order:
an order leaves `pending` once.

A late payment accepted (transitions.late_payment_accept) takes the ended order's
units again, all lines or none (stock_reserve_again), then sells them as for any paid
order; the order is then paid, so that too happens once."""

from dataclasses import dataclass

from djangomart.catalog import services as catalog_services
from djangomart.orders.locks import variants_lock
from djangomart.orders.models import Order, OrderEvent


@dataclass(frozen=True)
class Shortage:
    """A line of an order that the shelf cannot serve now."""

    sku: str
    wanted: int
    available: int

    def describe(self) -> str:
        return f"{self.sku}: {self.wanted} wanted, {max(self.available, 0)} available"


def _quantities(order: Order) -> dict[int, int]:
    quantities: dict[int, int] = {}
    for line in order.lines.all():
        quantities[line.variant_id] = quantities.get(line.variant_id, 0) + line.quantity
    return quantities


def stock_sold(order: Order) -> bool:
    """Whether `order`'s units left the shelf: every way into `paid` sells them
    (transitions.apply, late_payment_accept) and a paid order can only become
    `fulfilled`. An ended order never sold, even when its late payment was held. (The
    status says it for orders paid before the stock ledger existed too, which have no
    `sale` movement.)"""
    return order.status in (Order.Status.PAID, Order.Status.FULFILLED)


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


def stock_reserve_again(order: Order) -> list[Shortage]:
    """Reserves the units of an ended order whose reservation was released, all lines or
    none, for a late payment accepted. The order must be locked; its variants are locked
    here (after it, in pk order) and read under that lock, so two late payments racing
    for the last units cannot both get them. Returns the lines short of stock, having
    changed nothing; an empty list once the units are reserved (stock_released false
    again). An order whose reservation was never released has nothing to take back."""
    if not order.stock_released:
        return []
    quantities = _quantities(order)
    locked = variants_lock(quantities)
    shortages = [
        Shortage(locked[variant_id].sku, quantity, locked[variant_id].available)
        for variant_id, quantity in sorted(quantities.items())
        if locked[variant_id].available < quantity
    ]
    if shortages:
        return shortages
    catalog_services.stock_reserve(quantities)
    order.stock_released = False
    order.save(update_fields=["stock_released", "updated_at"])
    OrderEvent.objects.create(
        order=order, kind=OrderEvent.Kind.NOTE, message="Stock reserved again (late payment)."
    )
    return []


def stock_sell(order: Order) -> None:
    """Turns the paid order's reservation into a sale, in the caller's transaction. The
    order must be locked; the ledger's unique (order, variant, sale) refuses a second
    sale of the same order."""
    if order.stock_released:
        # Unreachable: apply sells only orders leaving `pending`, and a late payment
        # reserves again first; selling units that are no longer reserved would break
        # the reserved count.
        return
    quantities = _quantities(order)
    variants_lock(quantities)
    # The ledger's `sale` rows (linked to the order) are the record; the timeline
    # already shows the transition to paid.
    catalog_services.stock_sell(quantities, order_id=order.pk)
