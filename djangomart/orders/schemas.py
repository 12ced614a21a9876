from typing import Annotated, Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from ninja import Field, Schema
from pydantic import AfterValidator

from djangomart.api.types import HttpUrl, NulFree
from djangomart.payments.checkout import redirect_url_pattern


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


class CheckoutIn(Schema):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {"email": "ada@example.com", "lines": [{"sku": "CLASSIC-TEE-M", "quantity": 1}]}
            ]
        }
    }

    email: Email
    lines: Annotated[list[CheckoutLineIn], Field(min_length=1, max_length=50)]
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
