"""The cart API's bodies and answers (OpenAPI component names are global: all Cart*)."""

from datetime import datetime
from typing import Annotated
from uuid import UUID

from ninja import Field, Schema

from djangomart.api.types import NulFree
from djangomart.carts.models import CartStatus
from djangomart.orders.schemas import CheckoutOptionsIn, Email

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


class CartCheckoutIn(CheckoutOptionsIn):
    model_config = {"json_schema_extra": {"examples": [{"email": "ada@example.com"}]}}

    email: Email | None = Field(
        None,
        description="Required for a guest cart; a customer's cart defaults to the account's "
        "primary email.",
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
