"""The cart API's bodies and answers (OpenAPI component names are global: all Cart*)."""

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from ninja import Field, Schema

from djangomart.api.types import HttpUrl, NulFree
from djangomart.carts.models import CartStatus
from djangomart.orders.schemas import AddressIn, Email
from djangomart.payments.checkout import redirect_url_pattern

Sku = Annotated[str, Field(min_length=1, max_length=64), NulFree]


class CartLineIn(Schema):
    model_config = {"json_schema_extra": {"examples": [{"sku": "CLASSIC-TEE-M", "quantity": 1}]}}

    sku: Sku
    quantity: Annotated[int, Field(ge=1, le=100)] = Field(
        description="Units to add; the line may hold at most 100 in all."
    )


class CartLineQuantityIn(Schema):
    model_config = {"json_schema_extra": {"examples": [{"quantity": 2}]}}

    quantity: Annotated[int, Field(ge=0, le=100)] = Field(
        description="The line's new quantity; 0 removes the line."
    )


def _redirect_url_schema(schema: dict[str, Any]) -> None:
    # Built when the schema is served: the allowed hosts are the deployment's settings.
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "string":
            branch["pattern"] = redirect_url_pattern()


class CartCheckoutIn(Schema):
    model_config = {"json_schema_extra": {"examples": [{"email": "ada@example.com"}]}}

    email: Email | None = Field(
        None,
        description="Required for a guest cart; a customer's cart defaults to the account's "
        "primary email.",
    )
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
        description="Ship to this saved address of the logged-in customer. Not with `address`.",
    )
    address: AddressIn | None = Field(
        None, description="Ship to this address. Not with `address_id`; both absent: none."
    )


class CartProblemOut(Schema):
    code: str = Field(
        description="`unavailable` (no longer sold), `out_of_stock`, `not_enough_stock` "
        "(see `available`), `price_changed` (see `price_when_added`, `current_price`), "
        "`currency_mismatch` (the variant is now priced in another currency than the cart)."
    )
    message: str
    available: int | None = Field(None, description="Units available now (stock problems).")
    price_when_added: int | None = Field(
        None, description="The unit price when the line was added or last set (price_changed)."
    )
    current_price: int | None = Field(None, description="The catalog's unit price now.")


class CartLineOut(Schema):
    sku: str
    name: str
    quantity: int
    unit_price: int = Field(description="The catalog's unit price now (minor units).")
    line_total: int = Field(description="unit_price x quantity.")
    available: int = Field(description="Units the catalog can sell now.")
    problems: list[CartProblemOut] = Field(description="Empty when the line can be checked out.")


class CartLineProblemsOut(Schema):
    sku: str
    problems: list[CartProblemOut]


class CartOut(Schema):
    id: UUID
    status: CartStatus = Field(
        description="`open`; `merged` (into a customer's cart at login) or `closed` "
        "(its order was paid): a closed or merged cart can be read, not changed."
    )
    lines: list[CartLineOut]
    subtotal: int = Field(description="Sum of line totals at current prices (minor units).")
    currency: str | None = Field(description="The lines' currency; null for an empty cart.")
    problems: list[CartLineProblemsOut] = Field(description="The lines that have problems.")
    can_checkout: bool = Field(description="Open, not empty, and no line has a problem.")
    order_id: UUID | None = Field(
        description="The order of the cart's latest checkout (pending, paid, or ended)."
    )
    created_at: datetime
    updated_at: datetime = Field(description="Last activity (what the idle cleanup reads).")


class CartCreatedOut(CartOut):
    token: str | None = Field(
        description="A guest cart's secret, shown only here: send it as `X-Cart-Token` on "
        "every later call. Null for a logged-in customer's cart."
    )
