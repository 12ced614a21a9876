from django.http import HttpRequest
from ninja import P, PathEx, Query, Router

from djangomart.api.schemas import error_responses
from djangomart.catalog import selectors
from djangomart.catalog.models import Category, Product
from djangomart.catalog.schemas import (
    CategoryOut,
    CategoryRefOut,
    ProductDetailOut,
    ProductListParams,
    ProductPageOut,
    ProductSummaryOut,
    Slug,
    VariantOut,
)

router = Router(tags=["catalog"])


@router.get("/categories", response={200: list[CategoryOut], **error_responses()})
def category_list(request: HttpRequest) -> list[CategoryOut]:
    return [_category_out(c) for c in selectors.category_list()]


@router.get("/products", response={200: ProductPageOut, **error_responses(422)})
def product_list(request: HttpRequest, params: Query[ProductListParams]) -> ProductPageOut:
    products = selectors.product_list(
        category=params.category, q=params.q, ordering=params.ordering
    )
    start = (params.page - 1) * params.page_size
    return ProductPageOut(
        items=[_summary_out(p) for p in products[start : start + params.page_size]],
        count=products.count(),
        page=params.page,
        page_size=params.page_size,
    )


@router.get("/products/{slug}", response={200: ProductDetailOut, **error_responses(404, 422)})
def product_detail(
    request: HttpRequest, slug: PathEx[Slug, P(example="classic-tee")]
) -> ProductDetailOut:
    product = selectors.product_get(slug=slug)
    return ProductDetailOut(
        slug=product.slug,
        name=product.name,
        description=product.description,
        category=CategoryRefOut(slug=product.category.slug, name=product.category.name),
        image_urls=product.image_urls,
        variants=_variants_out(product),
    )


def _variants_out(product: Product) -> list[VariantOut]:
    return [
        VariantOut(
            sku=v.sku,
            label=v.label,
            price=v.price,
            currency=v.currency,
            available=selectors.variant_available(v),
        )
        for v in product.sellable_variants  # type: ignore[attr-defined]
    ]


def _category_out(category: Category) -> CategoryOut:
    return CategoryOut(
        slug=category.slug,
        name=category.name,
        parent=category.parent.slug if category.parent else None,
    )


def _summary_out(product: Product) -> ProductSummaryOut:
    return ProductSummaryOut(
        slug=product.slug,
        name=product.name,
        category=CategoryRefOut(slug=product.category.slug, name=product.category.name),
        image_urls=product.image_urls,
        price_from=product.price_from,  # type: ignore[attr-defined]
        currency=product.currency,  # type: ignore[attr-defined]
        in_stock=product.in_stock,  # type: ignore[attr-defined]
        variants=_variants_out(product),
    )
