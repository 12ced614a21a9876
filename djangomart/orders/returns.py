"""Units of an order back on the shelf: the one rule for every return to stock (a staff
refund's `restock`, payments.refund_requests).

A line may return at most what it sold, counted across all its returns
(OrderLine.quantity_returned), and only an order that took its units off the shelf
(orders.stock.stock_sold): an order can have the customer's money without ever having
sold (it expired, its reservation was dropped, and the late payment was held:
LATE_PAYMENT_POLICY), and a refund of it returns nothing to stock. Returned
units are taken first from those shipped and not yet returned (the customer sent them
back); any beyond that had never left the warehouse, so they are withdrawn from what is
still to ship (a refund before shipping). Each returned unit is a `return` movement in
the stock ledger, in the caller's transaction."""

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import User
from django.db.models import F

from djangomart.catalog import services as catalog_services
from djangomart.core.errors import DomainError
from djangomart.orders.fulfillment_state import fulfillment_refresh
from djangomart.orders.lines import LineQuantity, LineRef, line_quantities_resolve
from djangomart.orders.locks import variants_lock
from djangomart.orders.models import Order, OrderEvent, OrderLine
from djangomart.orders.services import order_note
from djangomart.orders.stock import stock_sold


class ReturnExceedsSold(DomainError):
    """More units than the line sold, counting its earlier returns: nothing changed."""

    status = 409
    code = "return_exceeds_sold"


def stock_return(
    order: Order,
    refs: Iterable[LineRef],
    *,
    staff_user: User | None,
    note: str = "",
    data: dict[str, Any] | None = None,
    field: str = "restock",
) -> list[dict[str, Any]]:
    """Puts `refs` (line id or SKU, quantity) of `order` (locked by the caller) back on
    the shelf. Returns what was returned, per line ({"sku", "quantity", "withdrawn"});
    an empty list for no refs (nothing written). Raises LinesInvalid (422: an unknown
    line, a line named twice, a quantity under 1) and ReturnExceedsSold (409), before
    writing anything."""
    wanted = line_quantities_resolve(order, refs, field=field, allow_empty=True)
    if not wanted:
        return []
    _check_sold(order, wanted, field=field)
    for index, item in enumerate(wanted):
        line = item.line
        if item.quantity > line.quantity_returnable:
            raise ReturnExceedsSold(
                f"{line.sku}: {item.quantity} cannot go back to stock; the order sold "
                f"{line.quantity} and {line.quantity_returned} already went back, so at "
                f"most {line.quantity_returnable} can.",
                location=f"{field}.{index}.quantity",
                sku=line.sku,
                returnable=line.quantity_returnable,
            )
    quantities: dict[int, int] = {}
    for item in wanted:
        quantities[item.line.variant_id] = quantities.get(item.line.variant_id, 0) + item.quantity
    variants_lock(quantities)  # lock order: the order (caller's), then its variants
    catalog_services.stock_return(
        quantities, order_id=order.pk, staff_user=staff_user, note=note or f"order {order.pk}"
    )
    returned = []
    for item in wanted:
        line = item.line
        from_shipped = min(item.quantity, line.quantity_shipped - _returned_shipped(line))
        withdrawn = item.quantity - max(from_shipped, 0)
        OrderLine.objects.filter(pk=line.pk).update(
            quantity_returned=F("quantity_returned") + item.quantity,
            quantity_withdrawn=F("quantity_withdrawn") + withdrawn,
        )
        returned.append({"sku": line.sku, "quantity": item.quantity, "withdrawn": withdrawn})
    who = staff_user.get_username() if staff_user is not None else "staff"
    what = ", ".join(f"{r['quantity']} x {r['sku']}" for r in returned)
    order_note(
        order,
        OrderEvent.Kind.STOCK_RETURN,
        f"Back to stock by {who}: {what}.",
        staff_user=staff_user,
        lines=returned,
        **(data or {}),
    )
    if any(r["withdrawn"] for r in returned):
        # Units that will not ship any more: what is left may now all have shipped.
        fulfillment_refresh(
            order,
            staff_user=staff_user,
            message="Everything left to ship has shipped (the rest went back to stock).",
        )
    return returned


def _check_sold(order: Order, wanted: list[LineQuantity], *, field: str) -> None:
    if stock_sold(order):
        return
    line = wanted[0].line
    raise ReturnExceedsSold(
        f"{line.sku}: nothing can go back to stock; this order is {order.status} and "
        "never took its units off the shelf (an order paid after it ended, with the "
        "late payment held, sold nothing).",
        location=f"{field}.0.quantity",
        sku=line.sku,
        returnable=0,
    )


def _returned_shipped(line: OrderLine) -> int:
    """Of the line's returned units, those that had shipped."""
    return line.quantity_returned - line.quantity_withdrawn
