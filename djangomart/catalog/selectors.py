"""Catalog reads for the storefront. Every function issues a fixed number of queries."""

from typing import Literal

from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery

from djangomart.catalog.models import Category, Product, Variant
from djangomart.core.errors import NotFound

ProductOrdering = Literal["name", "-name", "price", "-price", "newest"]


def category_list() -> QuerySet[Category]:
    return Category.objects.select_related("parent").order_by("name", "pk")


def product_list(
    *, category: str | None = None, q: str | None = None, ordering: ProductOrdering = "name"
) -> QuerySet[Product]:
    """Active products, each annotated with its cheapest active variant's price and
    currency (`price_from`, `currency`) and whether any active variant is in stock, with
    its active variants prefetched in position order (`sellable_variants`): evaluating
    a page is two queries, whatever its size.

    `category` matches a category slug or its parent's, so a top-level category
    lists its subcategories' products too.
    """
    sellable = Variant.objects.filter(product=OuterRef("pk"), active=True)
    cheapest = sellable.order_by("price", "pk")
    products = (
        Product.objects.filter(active=True)
        .select_related("category")
        .annotate(
            price_from=Subquery(cheapest.values("price")[:1]),
            currency=Subquery(cheapest.values("currency")[:1]),
            in_stock=Exists(sellable.filter(on_hand__gt=F("reserved"))),
        )
        .prefetch_related(_sellable_variants())
    )
    if category:
        products = products.filter(Q(category__slug=category) | Q(category__parent__slug=category))
    if q:
        has_sku = Exists(Variant.objects.filter(product=OuterRef("pk"), sku__iexact=q))
        products = products.filter(Q(name__icontains=q) | Q(description__icontains=q) | has_sku)
    order_by = {
        "name": [F("name").asc(), F("pk").asc()],
        "-name": [F("name").desc(), F("pk").asc()],
        "price": [F("price_from").asc(nulls_last=True), F("pk").asc()],
        "-price": [F("price_from").desc(nulls_last=True), F("pk").asc()],
        "newest": [F("created_at").desc(), F("pk").desc()],
    }[ordering]
    return products.order_by(*order_by)


def product_get(*, slug: str) -> Product:
    """An active product with its active variants prefetched in position order
    (`sellable_variants`).

    Raises NotFound when there is no active product with that slug.
    """
    product = (
        Product.objects.filter(active=True, slug=slug)
        .select_related("category")
        .prefetch_related(_sellable_variants())
        .first()
    )
    if product is None:
        raise NotFound(f"No product with slug {slug!r}.")
    return product


def _sellable_variants() -> Prefetch:  # type: ignore[type-arg]
    """A product's active variants, in the order staff gave them (`position`)."""
    variants = Variant.objects.filter(active=True).order_by("position", "pk")
    return Prefetch("variants", queryset=variants, to_attr="sellable_variants")


def variant_available(variant: Variant) -> int:
    """Units a customer can buy now: on hand minus what pending orders hold."""
    return max(variant.available, 0) if variant.active else 0


def variants_low_on_stock() -> QuerySet[Variant]:
    """Active variants whose available units (on hand minus reserved) are at or below
    their low_stock_threshold, the emptiest first: what to restock (the admin's front
    page, the variant list's "low stock" filter)."""
    return (
        Variant.objects.filter(active=True, product__active=True)
        .annotate(units_available=F("on_hand") - F("reserved"))
        .filter(units_available__lte=F("low_stock_threshold"))
        .select_related("product")
        .order_by("units_available", "sku")
    )
