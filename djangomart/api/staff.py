"""What every staff operation on an order shares (the refunds in payments.staff_api, the
shipments in fulfillment.api): the answers to a request without the right credentials,
the Idempotency-Key header, and "no such order" as a 404 before anything else."""

from typing import Annotated
from uuid import UUID

from ninja import Field, HeaderEx, P, Schema

from djangomart.api.types import NulFree
from djangomart.core.errors import NotFound
from djangomart.orders import idempotency
from djangomart.orders.api import HEADER_TOKEN_PATTERN
from djangomart.orders.lines import MAX_QUANTITY, LineRef, LinesInvalid
from djangomart.orders.models import Order
from djangomart.payments.checkout import GUEST_IDEMPOTENCY_KEY_MIN_LENGTH

STAFF_AUTH_ERRORS = {
    401: {
        "description": "`not_authenticated`: no credentials, a bad or revoked token, or a "
        "token whose user is inactive (with `WWW-Authenticate: Bearer`).",
    },
    403: {
        "description": "`permission_denied`: not an active staff user, or without the "
        "permission; `csrf_failed`: a session request without the CSRF token."
    },
}

IDEMPOTENCY_KEY_HELP = (
    "Required. Makes retries of this request return what the first one made instead of "
    "acting again: the same key with the same body on the same order answers 200 with the "
    "first request's result; with another body it is a 422 `idempotency_key_reused`. Use a "
    "random value (a UUID4) per refund or shipment you mean to make."
)

# As checkout's (orders.api): printable ASCII, 16 to 255 characters.
StaffIdempotencyKey = HeaderEx[
    str,
    P(
        alias="Idempotency-Key",
        min_length=GUEST_IDEMPOTENCY_KEY_MIN_LENGTH,
        max_length=idempotency.KEY_MAX_LENGTH,
        pattern=HEADER_TOKEN_PATTERN,
        description=IDEMPOTENCY_KEY_HELP,
    ),
]


def staff_order_get(order_id: UUID) -> Order:
    """The order a staff operation names, or NotFound (404)."""
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        raise NotFound("No such order.")
    return order


class StaffLineQuantityIn(Schema):
    """One line of the order, by its id (`line_id`) or its SKU (`sku`), and a quantity."""

    line_id: Annotated[int, Field(ge=1, le=2**63 - 1, strict=True)] | None = Field(
        None, description="The order line's id (the staff API's shipments list them)."
    )
    sku: Annotated[str, Field(min_length=1, max_length=64), NulFree] | None = Field(
        None, description="The line's SKU, as sold. Give `line_id` or `sku`, not both."
    )
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY, strict=True)]

    def ref(self) -> int | str:
        return self.line_id if self.line_id is not None else (self.sku or "")


def line_refs(lines: list[StaffLineQuantityIn], field: str) -> list[LineRef]:
    """The lines as the services read them; one naming both or neither is a 422."""
    for index, line in enumerate(lines):
        if (line.line_id is None) == (line.sku is None):
            raise LinesInvalid(
                "Give the line's `line_id` or its `sku` (one of them).",
                location=f"{field}.{index}",
            )
    return [(line.ref(), line.quantity) for line in lines]
