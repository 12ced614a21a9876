from typing import Annotated
from uuid import UUID

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from ninja import Field, Schema
from pydantic import AfterValidator


def _email(value: str) -> str:
    try:
        validate_email(value)
    except ValidationError:
        raise ValueError("not a valid email address") from None
    return value.strip()


Email = Annotated[str, Field(max_length=254), AfterValidator(_email)]


class CheckoutLineIn(Schema):
    sku: Annotated[str, Field(min_length=1, max_length=64)]
    quantity: Annotated[int, Field(ge=1, le=100)]


class CheckoutIn(Schema):
    email: Email
    lines: Annotated[list[CheckoutLineIn], Field(min_length=1, max_length=50)]
    success_url: Annotated[str, Field(max_length=2000)] | None = None
    cancel_url: Annotated[str, Field(max_length=2000)] | None = None


class OrderLineOut(Schema):
    sku: str
    name: str
    unit_price: int
    quantity: int
    line_total: int


class OrderOut(Schema):
    id: UUID
    status: str
    payment_status: str
    currency: str
    total: int
    amount_paid: int
    amount_refunded: int
    disputed: bool
    needs_attention: bool
    lines: list[OrderLineOut]


class CheckoutOut(Schema):
    order: OrderOut
    access_token: str
    checkout_url: str
    checkout_session_id: str
