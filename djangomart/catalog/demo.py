"""The demo catalog that `manage.py seed_demo` loads: 3 categories, 12 products,
30 variants in USD (in the order listed: S, M, L), with enough stock for load tests;
the initial stock is a `restock` in the stock ledger."""

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from djangomart.catalog.models import Category, Product, StockMovement, Variant
from djangomart.catalog.services import stock_changes

logger = logging.getLogger(__name__)

DEMO_CURRENCY = "usd"
DEMO_STOCK = 500


@dataclass(frozen=True)
class DemoProduct:
    slug: str
    name: str
    description: str
    category: str
    # (sku suffix, option label, price in cents)
    variants: list[tuple[str, str, int]] = field(default_factory=list)


DEMO_CATEGORIES = [
    ("apparel", "Apparel"),
    ("home", "Home & Kitchen"),
    ("accessories", "Accessories"),
]

_SIZES = [("S", "Size S"), ("M", "Size M"), ("L", "Size L")]

DEMO_PRODUCTS = [
    DemoProduct("classic-tee", "Classic Tee", "Heavyweight cotton T-shirt.", "apparel",
                [(s, label, 2000) for s, label in _SIZES]),
    DemoProduct("zip-hoodie", "Zip Hoodie", "Brushed fleece hoodie with a full zip.", "apparel",
                [(s, label, 5500) for s, label in _SIZES]),
    DemoProduct("rain-jacket", "Rain Jacket", "Packable waterproof shell.", "apparel",
                [(s, label, 8900) for s, label in _SIZES]),
    DemoProduct("wool-socks", "Wool Socks", "Merino blend, cushioned sole.", "apparel",
                [("S", "Size S/M", 1200), ("L", "Size L/XL", 1200)]),
    DemoProduct("ceramic-mug", "Ceramic Mug", "Stoneware mug, 350 ml.", "home",
                [("WHT", "White", 1400), ("BLK", "Black", 1400), ("BLU", "Blue", 1500)]),
    DemoProduct("pour-over-set", "Pour-Over Set", "Glass dripper with a carafe.", "home",
                [("STD", "Standard", 3900)]),
    DemoProduct("linen-towel", "Linen Towel", "Stonewashed linen tea towel.", "home",
                [("NAT", "Natural", 1600), ("GRN", "Sage", 1600), ("GRY", "Charcoal", 1600)]),
    DemoProduct("cast-iron-pan", "Cast Iron Pan", "Pre-seasoned skillet.", "home",
                [("20", "20 cm", 3500), ("26", "26 cm", 4500)]),
    DemoProduct("canvas-tote", "Canvas Tote", "Heavy canvas tote bag.", "accessories",
                [("NAT", "Natural", 1800), ("BLK", "Black", 1800)]),
    DemoProduct("leather-wallet", "Leather Wallet", "Vegetable-tanned bifold.", "accessories",
                [("BRN", "Brown", 4900), ("BLK", "Black", 4900)]),
    DemoProduct("wool-beanie", "Wool Beanie", "Ribbed knit beanie.", "accessories",
                [("GRY", "Grey", 2400), ("NVY", "Navy", 2400), ("RED", "Red", 2400)]),
    DemoProduct("sunglasses", "Sunglasses", "Polarised lenses, acetate frame.", "accessories",
                [("TOR", "Tortoise", 7900), ("BLK", "Black", 7900), ("CLR", "Clear", 8400)]),
]  # fmt: skip


def demo_image_url(slug: str) -> str:
    """A placeholder picture shipped with the app (catalog/static/catalog/demo/), served
    by this backend. Absolute, as Product.image_urls holds URLs and clients expect them
    so; it names PUBLIC_URL as it was when the catalog was seeded. The unhashed file
    name (WhiteNoise serves it too) works before and without collectstatic."""
    return f"{settings.PUBLIC_URL}/{settings.STATIC_URL.strip('/')}/catalog/demo/{slug}.svg"


@transaction.atomic
def demo_catalog_seed() -> int:
    """Creates whatever part of the demo catalog is missing and returns how many rows
    it created. Existing rows are left exactly as they are (stock that was sold
    stays sold), so running it again changes nothing. A handful of statements, not a few
    per row: every test that needs a catalog seeds one."""
    categories = {c.slug: c for c in Category.objects.filter(slug__in=dict(DEMO_CATEGORIES))}
    new_categories = Category.objects.bulk_create(
        Category(slug=slug, name=name) for slug, name in DEMO_CATEGORIES if slug not in categories
    )
    categories.update((c.slug, c) for c in new_categories)

    slugs = [demo.slug for demo in DEMO_PRODUCTS]
    products = {p.slug: p for p in Product.objects.filter(slug__in=slugs)}
    new_products = Product.objects.bulk_create(
        Product(
            slug=demo.slug,
            name=demo.name,
            description=demo.description,
            category=categories[demo.category],
            image_urls=[demo_image_url(demo.slug)],
        )
        for demo in DEMO_PRODUCTS
        if demo.slug not in products
    )
    products.update((p.slug, p) for p in new_products)

    wanted = {
        f"{demo.slug.upper()}-{suffix}": Variant(
            product=products[demo.slug],
            sku=f"{demo.slug.upper()}-{suffix}",
            label=label,
            position=position,
            price=price,
            currency=DEMO_CURRENCY,
        )
        for demo in DEMO_PRODUCTS
        for position, (suffix, label, price) in enumerate(demo.variants)
    }
    existing = set(Variant.objects.filter(sku__in=wanted).values_list("sku", flat=True))
    new_variants = Variant.objects.bulk_create(
        v for sku, v in wanted.items() if sku not in existing
    )
    if new_variants:
        stock_changes(
            {variant.pk: DEMO_STOCK for variant in new_variants},
            reason=StockMovement.Reason.RESTOCK,
            note="Demo catalog seed.",
        )
    created = len(new_categories) + len(new_products) + len(new_variants)
    logger.info("demo catalog seeded", extra={"rows_created": created})
    return created
