"""Stock reservation: an order takes its units from `stock_on_hand` when it is created
and gives them back if it ends without being paid."""

from django.db.models import F

from djangomart.catalog.models import Variant
from djangomart.orders.locks import variants_lock
from djangomart.orders.models import Order, OrderEvent


def stock_release(order: Order) -> None:
    """Returns the order's units to stock, once. The order must be locked."""
    if order.stock_released:
        return
    lines = list(order.lines.order_by("variant_id"))
    variants_lock(line.variant_id for line in lines)
    for line in lines:
        Variant.objects.filter(pk=line.variant_id).update(
            stock_on_hand=F("stock_on_hand") + line.quantity
        )
    order.stock_released = True
    order.save(update_fields=["stock_released", "updated_at"])
    OrderEvent.objects.create(order=order, kind=OrderEvent.Kind.NOTE, message="Stock released.")
