from typing import Annotated

from ninja import Field, Schema

from djangomart.api.types import Text
from djangomart.catalog.selectors import ProductOrdering

Slug = Annotated[str, Field(pattern=r"^[-a-zA-Z0-9_]+$", max_length=200)]


class CategoryOut(Schema):
    slug: str
    name: str
    parent: str | None = Field(None, description="Slug of the parent category.")


class CategoryRefOut(Schema):
    slug: str
    name: str


class VariantOut(Schema):
    sku: str
    label: str
    price: int = Field(description="In the currency's minor unit (cents for USD).")
    currency: str
    available: int = Field(
        description="Units that can be bought now: on hand minus those held by pending orders."
    )


class ProductSummaryOut(Schema):
    slug: str
    name: str
    category: CategoryRefOut
    image_urls: list[str]
    price_from: int | None = Field(
        description="Cheapest active variant's price in minor units (cents); null if none."
    )
    currency: str | None = Field(description="Lowercase ISO-4217 code of `price_from`.")
    in_stock: bool
    variants: list[VariantOut] = Field(
        description="Active variants in the shop's order, so a client can buy from the list."
    )


class ProductPageOut(Schema):
    items: list[ProductSummaryOut]
    count: int = Field(description="Products matching the filters, on all pages.")
    page: int
    page_size: int


class ProductDetailOut(Schema):
    slug: str
    name: str
    description: str
    category: CategoryRefOut
    image_urls: list[str]
    variants: list[VariantOut]


class ProductListParams(Schema):
    category: Slug | None = Field(None, description="Category slug (includes subcategories).")
    q: Text | None = Field(None, min_length=1, max_length=100, description="Search text.")
    ordering: ProductOrdering = "name"
    page: int = Field(1, ge=1, le=10_000)
    page_size: int = Field(20, ge=1, le=100)
