"""Catalog pages: home, listing (a category or all products, with search, sorting and
pagination), the product page with its variant picker. Thin: the reads are
catalog.selectors', the same the API uses."""

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe
from django.views.decorators.vary import vary_on_headers

from djangomart.catalog import selectors
from djangomart.catalog.models import Category, Product
from djangomart.core.errors import NotFound
from djangomart.money import format_amount
from djangomart.storefront.catalog_cache import catalog_version
from djangomart.storefront.htmx import is_htmx

PAGE_SIZE = 12
FEATURED_COUNT = 8
SORTS = {
    "name": "Name, A to Z",
    "-name": "Name, Z to A",
    "price": "Price, low to high",
    "-price": "Price, high to low",
    "newest": "Newest",
}
Q_MAX_LENGTH = 100


def _price_from(product: Product) -> str:
    price = getattr(product, "price_from", None)
    currency = getattr(product, "currency", None)
    return format_amount(price, currency) if price is not None and currency else ""


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    def featured() -> list[Product]:
        # The products staff marked featured, else the newest: never an empty front page.
        products = list(
            selectors.product_list(ordering="newest").filter(featured=True)[:FEATURED_COUNT]
        ) or list(selectors.product_list(ordering="newest")[:FEATURED_COUNT])
        for product in products:
            product.price_text = _price_from(product)  # type: ignore[attr-defined]
        return products

    return render(
        request,
        "storefront/home.html",
        {
            "catalog_version": catalog_version(),
            "categories": lambda: [c for c in selectors.category_list() if c.parent_id is None],
            "featured": featured,
        },
    )


@require_safe
@vary_on_headers("HX-Request")
def listing(request: HttpRequest, slug: str | None = None) -> HttpResponse:
    category = None
    if slug is not None:
        category = Category.objects.filter(slug=slug).first()
        if category is None:
            raise Http404("No such category.")
    q = request.GET.get("q", "").strip()[:Q_MAX_LENGTH]
    sort = request.GET.get("sort", "name")
    if sort not in SORTS:
        sort = "name"
    products = selectors.product_list(
        category=slug,
        q=q or None,
        ordering=sort,  # type: ignore[arg-type]
    )
    page = Paginator(products, PAGE_SIZE).get_page(request.GET.get("page"))
    for product in page.object_list:
        product.price_text = _price_from(product)
    template = "storefront/_product_grid.html" if is_htmx(request) else "storefront/listing.html"
    return render(
        request,
        template,
        {"category": category, "q": q, "sort": sort, "sorts": SORTS, "page": page},
    )


@require_safe
@vary_on_headers("HX-Request")
def product(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        item = selectors.product_get(slug=slug)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    variants = [
        {
            "sku": v.sku,
            "label": v.label or v.sku,
            "price": format_amount(v.price, v.currency),
            "available": selectors.variant_available(v),
        }
        for v in item.sellable_variants  # type: ignore[attr-defined]
    ]
    wanted = request.GET.get("sku")
    chosen = next((v for v in variants if v["sku"] == wanted), None)
    if chosen is None:
        chosen = next(
            (v for v in variants if v["available"] > 0), variants[0] if variants else None
        )
    context = {"product": item, "variants": variants, "chosen": chosen}
    if is_htmx(request):
        return render(request, "storefront/_variant_panel.html", context)
    return render(request, "storefront/product.html", context)
