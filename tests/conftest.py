import pytest
from django.contrib.auth.models import User
from django.test import Client

from djangomart.catalog.demo import demo_catalog_seed
from djangomart.catalog.models import Category, Product, StockMovement, Variant
from djangomart.catalog.services import variant_stock_change


@pytest.fixture
def demo_catalog(db: None) -> None:
    demo_catalog_seed()


@pytest.fixture
def api() -> Client:
    return Client()


@pytest.fixture
def staff_client(db: None) -> Client:
    user = User.objects.create_user("staff", "staff@example.com", "pw-for-tests", is_staff=True)
    user.is_superuser = True
    user.save()
    client = Client()
    client.force_login(user)
    return client


def make_product(
    slug: str,
    *,
    category: Category | None = None,
    active: bool = True,
    variants: list[tuple[str, int, int]] | None = None,
) -> Product:
    """A product with variants given as (sku, price, stock), in that order (`position`);
    stock is on hand, recorded as a restock in the stock ledger."""
    category = category or Category.objects.get_or_create(slug="misc", defaults={"name": "Misc"})[0]
    product = Product.objects.create(
        name=slug.replace("-", " ").title(), slug=slug, category=category, active=active
    )
    for position, (sku, price, stock) in enumerate(variants or []):
        variant = Variant.objects.create(product=product, sku=sku, price=price, position=position)
        if stock:
            variant_stock_change(
                variant_id=variant.pk, delta=stock, reason=StockMovement.Reason.RESTOCK
            )
    return product
