from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from ninja import Field, Schema
from pydantic import AfterValidator

from djangomart.accounts.addresses import AddressIn
from djangomart.api.types import HttpUrl, NulFree
from djangomart.payments.checkout import redirect_url_pattern
from djangomart.payments.models import DisputeStatus, RefundStatus

# AddressIn (the validated inline address) lives with the address book
# (djangomart/accounts/addresses.py); re-exported here for the checkout bodies.
__all__ = ["AddressIn"]


def _email(value: str) -> str:
    try:
        validate_email(value)
    except ValidationError:
        raise ValueError("Not a valid email address") from None
    return value.strip()


Email = Annotated[
    str, Field(max_length=254, json_schema_extra={"format": "email"}), AfterValidator(_email)
]


class CheckoutLineIn(Schema):
    sku: Annotated[str, Field(min_length=1, max_length=64), NulFree]
    quantity: Annotated[int, Field(ge=1, le=100)]


def _redirect_url_schema(schema: dict[str, Any]) -> None:
    # Built when the schema is served: the allowed hosts are the deployment's settings.
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "string":
            branch["pattern"] = redirect_url_pattern()


class CheckoutOptionsIn(Schema):
    """What every checkout may say besides its lines and email: direct (CheckoutIn) or
    from a cart (carts.schemas.CartCheckoutIn)."""

    success_url: HttpUrl | None = Field(
        None,
        description="Where Stripe sends the customer after paying; on an allowed host.",
        json_schema_extra=_redirect_url_schema,
    )
    cancel_url: HttpUrl | None = Field(
        None,
        description="Where Stripe sends the customer who goes back; on an allowed host.",
        json_schema_extra=_redirect_url_schema,
    )
    address_id: UUID | None = Field(
        None,
        description="Ship to this saved address of the logged-in customer "
        "(`/api/v1/me/addresses`); its fields are copied into the order. Not with `address`.",
    )
    address: AddressIn | None = Field(
        None,
        description="Ship to this address (validated as in the address book). Not with "
        "`address_id`; both absent: an order without a shipping address.",
    )


class CheckoutIn(CheckoutOptionsIn):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {"email": "ada@example.com", "lines": [{"sku": "CLASSIC-TEE-M", "quantity": 1}]}
            ]
        }
    }

    email: Email
    lines: Annotated[list[CheckoutLineIn], Field(min_length=1, max_length=50)]


class OrderLineOut(Schema):
    sku: str
    name: str
    unit_price: int
    quantity: int
    line_total: int
    quantity_shipped: int = Field(description="Units of the line shipped so far.")


# Named for the order API: the staff API has refund schemas of its own, and OpenAPI
# component names are global.
class OrderRefundOut(Schema):
    id: UUID = Field(description="DjangoMart's id of the refund.")
    amount: int = Field(description="In the currency's minor unit.")
    currency: str
    status: RefundStatus = Field(description="Stripe's refund status; only `succeeded` counts.")
    reason: str | None = Field(
        description="Stripe's refund reason (`duplicate`, `fraudulent`, "
        "`requested_by_customer`), or null."
    )
    created_at: datetime


class OrderDisputeOut(Schema):
    id: str = Field(description="Stripe's dispute id (`dp_...`).")
    status: DisputeStatus = Field(
        description="`warning_*`: an inquiry (no money taken yet); `needs_response` and "
        "`under_review`: open; `won`, `lost`, `warning_closed`, `prevented`: closed."
    )
    amount: int = Field(description="The disputed amount, in the currency's minor unit.")
    currency: str
    reason: str = Field(description="Stripe's dispute reason (`fraudulent`, `general`, ...).")
    evidence_due_by: datetime | None = Field(
        description="When the evidence must reach Stripe; null when Stripe set no deadline."
    )


class ShippingAddressOut(Schema):
    """The address the order ships to, as it was at checkout: a copy, which later edits
    or the deletion of the saved address never change."""

    name: str
    line1: str
    line2: str
    city: str
    postal_code: str
    region: str
    country: str = Field(description="ISO 3166-1 alpha-2, uppercase.")
    phone: str


class OrderOut(Schema):
    id: UUID
    status: str
    payment_status: str = Field(
        description="`unpaid`, `processing`, `paid`, `partially_refunded` or `refunded`."
    )
    currency: str
    total: int
    amount_paid: int = Field(description="Money received in the order's currency.")
    amount_refunded: int = Field(description="Succeeded refunds, in the order's currency.")
    disputed: bool = Field(description="A dispute (or inquiry) of the payment is open.")
    dispute_lost: bool = Field(description="A dispute was lost: the bank took money back.")
    amount_lost_to_disputes: int = Field(
        description="Money taken back by lost disputes (order currency); not a refund."
    )
    needs_attention: bool
    fulfillment_status: str = Field(
        description="`unfulfilled` (nothing shipped), `partial` or `fulfilled` (everything "
        "left to ship has shipped; `status` is then `fulfilled` too)."
    )
    lines: list[OrderLineOut]
    refunds: list[OrderRefundOut]
    disputes: list[OrderDisputeOut] = Field(description="Every dispute, oldest first.")
    dispute: OrderDisputeOut | None = Field(
        description="The dispute to show: the open one, else the latest; null if none."
    )
    shipping_address: ShippingAddressOut | None = Field(
        description="Where the order ships, as given at checkout; null if none."
    )


class CheckoutOut(Schema):
    order: OrderOut
    access_token: str
    checkout_url: str
    checkout_session_id: str
