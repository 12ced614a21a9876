"""`manage.py seed_demo`: the demo catalog, loaded idempotently."""

from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from djangomart.catalog.models import Category, Product, StockMovement, Variant

pytestmark = pytest.mark.django_db


def snapshot() -> list[tuple]:
    return [
        *Category.objects.order_by("pk").values_list(),
        *Product.objects.order_by("pk").values_list(),
        *Variant.objects.order_by("pk").values_list(),
    ]


def test_seed_demo_loads_the_demo_catalog() -> None:
    call_command("seed_demo")
    assert Category.objects.count() == 3
    assert Product.objects.count() == 12
    assert Variant.objects.count() == 30
    assert set(Variant.objects.values_list("currency", flat=True)) == {"usd"}
    assert min(Variant.objects.values_list("on_hand", flat=True)) >= 100
    assert set(Variant.objects.values_list("reserved", flat=True)) == {0}
    assert not Product.objects.filter(variants=None).exists()


def test_running_seed_demo_twice_changes_nothing() -> None:
    call_command("seed_demo")
    before = snapshot()
    call_command("seed_demo")
    assert snapshot() == before


def test_seed_demo_leaves_sold_stock_and_edits_alone() -> None:
    call_command("seed_demo")
    Variant.objects.filter(sku="CLASSIC-TEE-M").update(on_hand=3, price=2100)
    call_command("seed_demo")
    tee = Variant.objects.get(sku="CLASSIC-TEE-M")
    assert (tee.on_hand, tee.price) == (3, 2100)


def test_seed_demo_restores_a_deleted_variant_only() -> None:
    call_command("seed_demo")
    StockMovement.objects.filter(variant__sku="SUNGLASSES-CLR").delete()  # the ledger protects it
    Variant.objects.filter(sku="SUNGLASSES-CLR").delete()
    call_command("seed_demo")
    assert Variant.objects.count() == 30


def test_seed_demo_records_the_initial_stock_as_a_restock_in_the_ledger() -> None:
    call_command("seed_demo")
    for variant in Variant.objects.all():
        (movement,) = variant.movements.all()
        assert (movement.reason, movement.delta, movement.on_hand_after) == (
            "restock",
            variant.on_hand,
            variant.on_hand,
        )


def test_seed_demo_orders_sizes_s_m_l() -> None:
    call_command("seed_demo")
    tee = Variant.objects.filter(product__slug="classic-tee").order_by("position")
    assert [v.sku for v in tee] == ["CLASSIC-TEE-S", "CLASSIC-TEE-M", "CLASSIC-TEE-L"]


def test_every_demo_image_is_served_by_the_app(client: Client) -> None:
    call_command("seed_demo")
    urls = [url for urls in Product.objects.values_list("image_urls", flat=True) for url in urls]
    assert len(urls) == Product.objects.count()
    for url in urls:
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == settings.PUBLIC_URL
        response = client.get(parts.path)
        assert response.status_code == 200, url
        assert response["Content-Type"] == "image/svg+xml"
        assert b"<svg" in b"".join(response.streaming_content)  # type: ignore[attr-defined]


def test_demo_images_pass_the_products_url_validation() -> None:
    call_command("seed_demo")
    for product in Product.objects.all():
        product.full_clean()
