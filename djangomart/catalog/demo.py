"""The demo catalog that `manage.py seed_demo` loads: 3 categories, 12 products,
30 variants in USD (in the order listed: S, M, L), with enough stock for load tests;
the initial stock is a `restock` in the stock ledger."""

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from djangomart.catalog.models import Category, Product, StockMovement, Variant
from djangomart.catalog.services import variant_stock_change

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
    stays sold), so running it again changes nothing."""
    created = 0
    categories: dict[str, Category] = {}
    for slug, name in DEMO_CATEGORIES:
        categories[slug], was_created = Category.objects.get_or_create(
            slug=slug, defaults={"name": name}
        )
        created += was_created
    for demo in DEMO_PRODUCTS:
        product, was_created = Product.objects.get_or_create(
            slug=demo.slug,
            defaults={
                "name": demo.name,
                "description": demo.description,
                "category": categories[demo.category],
                "image_urls": [demo_image_url(demo.slug)],
            },
        )
        created += was_created
        for position, (suffix, label, price) in enumerate(demo.variants):
            variant, was_created = Variant.objects.get_or_create(
                sku=f"{demo.slug.upper()}-{suffix}",
                defaults={
                    "product": product,
                    "label": label,
                    "position": position,
                    "price": price,
                    "currency": DEMO_CURRENCY,
                },
            )
            if was_created:
                variant_stock_change(
                    variant_id=variant.pk,
                    delta=DEMO_STOCK,
                    reason=StockMovement.Reason.RESTOCK,
                    note="Demo catalog seed.",
                )
            created += was_created
    logger.info("demo catalog seeded", extra={"rows_created": created})
    return created
