"""The staff API for shipments (`/api/v1/staff/orders/{id}/shipments`, tag `staff`;
docs/fulfillment.md). Authentication, permissions, the Idempotency-Key and the errors
are as for refunds (djangomart.api.staff); the work is fulfillment.services'."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status

from djangomart.accounts.auth import staff_auth, staff_user
from djangomart.api.schemas import error_responses
from djangomart.api.staff import (
    STAFF_AUTH_ERRORS,
    StaffIdempotencyKey,
    StaffLineQuantityIn,
    line_refs,
    staff_order_get,
)
from djangomart.api.types import NulFree
from djangomart.fulfillment import services
from djangomart.fulfillment.models import Shipment
from djangomart.fulfillment.selectors import shipment_with_lines, shipments_of
from djangomart.orders.models import Order

router = Router(tags=["staff"])

# Shipping needs "Can add shipment"; reading shipments needs "Can view shipment" or that.
ADD = ("fulfillment.add_shipment",)
VIEW = ("fulfillment.view_shipment", "fulfillment.add_shipment")


class StaffShipmentIn(Schema):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "lines": [{"sku": "CLASSIC-TEE-M", "quantity": 1}],
                    "carrier": "DHL",
                    "tracking_number": "JD014600006281230704",
                    "tracking_url": "https://www.dhl.com/track?id=JD014600006281230704",
                }
            ]
        }
    }

    lines: Annotated[list[StaffLineQuantityIn], Field(min_length=1, max_length=100)] = Field(
        description="What is in the parcel: each line at most what is left of it to ship."
    )
    carrier: Annotated[
        str, Field(min_length=1, max_length=services.CARRIER_MAX_LENGTH), NulFree
    ] = Field(description="Who carries it (`DHL`, `UPS`, `La Poste`, ...).")
    tracking_number: Annotated[
        str, Field(max_length=services.TRACKING_NUMBER_MAX_LENGTH), NulFree
    ] = ""
    tracking_url: Annotated[str, Field(max_length=services.TRACKING_URL_MAX_LENGTH), NulFree] = (
        Field("", description="An http(s) link where the customer follows the parcel.")
    )
    shipped_at: datetime | None = Field(None, description="When it left; now when left out.")


class StaffShipmentLineOut(Schema):
    line_id: int = Field(description="The order line's id.")
    sku: str
    name: str
    quantity: int


class StaffShipmentOut(Schema):
    id: UUID
    order_id: UUID
    carrier: str
    tracking_number: str
    tracking_url: str
    shipped_at: datetime
    lines: list[StaffShipmentLineOut]
    shipped_by: str | None = Field(description="The staff user's username, or null.")
    overridden: list[str] = Field(
        description="Refusals a human overrode to ship it (`order_refunded`, "
        "`order_disputed`, `order_dispute_lost`); empty for an ordinary shipment."
    )
    created_at: datetime


class StaffOrderLineFulfillmentOut(Schema):
    line_id: int
    sku: str
    name: str
    quantity: int = Field(description="Units sold.")
    quantity_shipped: int
    quantity_to_ship: int = Field(
        description="Units left to ship: sold, minus shipped, minus units that went back "
        "to stock before they shipped (a refund's `restock`)."
    )


class StaffOrderFulfillmentOut(Schema):
    id: UUID
    status: str
    payment_status: str
    disputed: bool
    dispute_lost: bool = Field(
        description="A dispute of the payment was lost (`order_dispute_lost`)."
    )
    fulfillment_status: str = Field(description="`unfulfilled`, `partial` or `fulfilled`.")
    lines: list[StaffOrderLineFulfillmentOut]


class StaffShipmentAnswer(Schema):
    shipment: StaffShipmentOut
    order: StaffOrderFulfillmentOut


class StaffShipmentList(Schema):
    order: StaffOrderFulfillmentOut
    shipments: list[StaffShipmentOut] = Field(description="Oldest first.")


def shipment_out(shipment: Shipment) -> StaffShipmentOut:
    """`shipment` with its lines and staff user loaded (selectors)."""
    user = shipment.staff_user
    return StaffShipmentOut(
        id=shipment.id,
        order_id=shipment.order_id,
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
        tracking_url=shipment.tracking_url,
        shipped_at=shipment.shipped_at,
        lines=[
            StaffShipmentLineOut(
                line_id=sl.order_line_id,
                sku=sl.order_line.sku,
                name=sl.order_line.name,
                quantity=sl.quantity,
            )
            for sl in shipment.lines.all()
        ],
        shipped_by=user.get_username() if user is not None else None,
        overridden=list(shipment.override.get("refusals", [])),
        created_at=shipment.created_at,
    )


def order_fulfillment_out(order: Order) -> StaffOrderFulfillmentOut:
    return StaffOrderFulfillmentOut(
        id=order.id,
        status=order.status,
        payment_status=order.payment_status,
        disputed=order.disputed,
        dispute_lost=order.dispute_lost,
        fulfillment_status=order.fulfillment_status,
        lines=[
            StaffOrderLineFulfillmentOut(
                line_id=line.pk,
                sku=line.sku,
                name=line.name,
                quantity=line.quantity,
                quantity_shipped=line.quantity_shipped,
                quantity_to_ship=line.quantity_to_ship,
            )
            for line in order.lines.order_by("pk")
        ],
    )


CREATE_RESPONSES = {
    **STAFF_AUTH_ERRORS,
    200: {"description": "A replay (the same Idempotency-Key and body): the first shipment."},
    201: {"description": "Shipped: the shipment and the order as it is now."},
    404: {"description": "`not_found`: no such order."},
    409: {
        "description": "Refused, nothing written (`overridable` says whether a human may "
        "override it from the admin): `order_not_paid`, `order_fulfilled`, "
        "`shipment_exceeds_remaining` (with `sku` and `remaining`), never overridable; "
        "`order_refunded` (all the money was refunded), `order_disputed` (a dispute is "
        "open), `order_dispute_lost` (a dispute was lost: the bank took money back), "
        "overridable in the admin only."
    },
    422: {
        "description": "`validation_error` (details name the field: an unknown or repeated "
        "line, a quantity under 1, a tracking URL that is not http(s), or "
        "`header.Idempotency-Key`); `idempotency_key_reused`: the key was used on this "
        "order with another body."
    },
}
READ_RESPONSES = {
    **STAFF_AUTH_ERRORS,
    404: {"description": "`not_found`: no such order."},
}


@router.post(
    "/orders/{order_id}/shipments",
    auth=staff_auth(*ADD),
    response={(200, 201): StaffShipmentAnswer, **error_responses(401, 403, 404, 409, 422)},
    openapi_extra={"responses": CREATE_RESPONSES},
)
def staff_shipment_create(
    request: HttpRequest,
    order_id: UUID,
    body: StaffShipmentIn,
    idempotency_key: StaffIdempotencyKey,
) -> Status[StaffShipmentAnswer]:
    """Ships units of a paid order: records the shipment, tells the customer and the
    shop's systems (`shipment.created`), and marks the order `fulfilled` once every unit
    has shipped. Needs `fulfillment.add_shipment`."""
    outcome = services.shipment_create(
        order_id=order_id,
        lines=line_refs(body.lines, "lines"),
        carrier=body.carrier,
        tracking_number=body.tracking_number,
        tracking_url=body.tracking_url,
        shipped_at=body.shipped_at,
        user=staff_user(request),
        idempotency_key=idempotency_key,
    )
    shipment = shipment_with_lines(
        Shipment.objects.select_related("staff_user", "order").get(pk=outcome.shipment.pk)
    )
    answer = StaffShipmentAnswer(
        shipment=shipment_out(shipment), order=order_fulfillment_out(shipment.order)
    )
    return Status(201 if outcome.created else 200, answer)


@router.get(
    "/orders/{order_id}/shipments",
    auth=staff_auth(*VIEW),
    response={200: StaffShipmentList, **error_responses(401, 403, 404, 422)},
    openapi_extra={"responses": READ_RESPONSES},
)
def staff_shipment_list(request: HttpRequest, order_id: UUID) -> StaffShipmentList:
    """The order's shipments and what is left to ship; needs `fulfillment.view_shipment`
    or `fulfillment.add_shipment`."""
    order = staff_order_get(order_id)
    return StaffShipmentList(
        order=order_fulfillment_out(order),
        shipments=[shipment_out(s) for s in shipments_of(order.pk)],
    )
