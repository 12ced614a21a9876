"""An order's lines as staff name them in a request (a shipment, a return to stock): by
the OrderLine's id or by its SKU, each with a quantity. One reading for every such
request, so that they refuse the same bad input the same way (422, nothing changed)."""

from collections.abc import Iterable
from dataclasses import dataclass

from djangomart.core.errors import DomainError
from djangomart.orders.models import Order, OrderLine

# A line named by its id (int) or its SKU (str), with a quantity.
LineRef = tuple[int | str, int]
MAX_QUANTITY = 1_000_000


class LinesInvalid(DomainError):
    """Lines that do not read: none, unknown to the order, named twice, or a quantity
    under 1. `location` names the bad entry (`lines.2.quantity`)."""

    status = 422
    code = "validation_error"

    def __init__(self, message: str, *, location: str, kind: str = "value_error") -> None:
        details = [{"location": location, "message": message, "type": kind}]
        super().__init__(message, details=details)


@dataclass(frozen=True)
class LineQuantity:
    line: OrderLine
    quantity: int


def line_quantities_resolve(
    order: Order, refs: Iterable[LineRef], *, field: str = "lines", allow_empty: bool = False
) -> list[LineQuantity]:
    """`refs` read against `order`'s lines (read by the caller under the order's lock),
    in the order given. Raises LinesInvalid: an empty list (unless `allow_empty`), a line
    the order does not have, a line named twice, a quantity that is not an integer of at
    least 1."""
    refs = list(refs)
    if not refs and not allow_empty:
        raise LinesInvalid("Name at least one line with a quantity.", location=field)
    lines = list(order.lines.all())
    by_id = {line.pk: line for line in lines}
    by_sku = {line.sku: line for line in lines}
    seen: set[int] = set()
    resolved = []
    for index, (ref, quantity) in enumerate(refs):
        where = f"{field}.{index}"
        line = by_sku.get(ref) if isinstance(ref, str) else by_id.get(ref)
        if line is None or isinstance(ref, bool):
            raise LinesInvalid(
                f"This order has no line {ref!r} (name a line by its id or SKU).",
                location=f"{where}.line",
            )
        if line.pk in seen:
            raise LinesInvalid(
                f"Line {line.sku} is named twice; give it once with the total quantity.",
                location=f"{where}.line",
            )
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            raise LinesInvalid(
                "The quantity must be an integer of at least 1.", location=f"{where}.quantity"
            )
        if quantity > MAX_QUANTITY:
            raise LinesInvalid(f"At most {MAX_QUANTITY}.", location=f"{where}.quantity")
        seen.add(line.pk)
        resolved.append(LineQuantity(line, quantity))
    return resolved
