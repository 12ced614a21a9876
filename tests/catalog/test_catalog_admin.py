"""The catalog admin: usable by staff, closed to everyone else."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from djangomart.catalog.models import Category, Product, Variant

pytestmark = pytest.mark.django_db

PAGES = [
    "/admin/catalog/category/",
    "/admin/catalog/category/add/",
    "/admin/catalog/product/",
    "/admin/catalog/product/add/",
    "/admin/catalog/variant/",
    "/admin/catalog/variant/add/",
    "/admin/catalog/product/?q=CLASSIC-TEE-M",
    "/admin/catalog/product/?active__exact=0",
    "/admin/catalog/variant/?q=mug&currency__exact=usd&active__exact=1",
    "/admin/catalog/category/?q=home",
]


@pytest.mark.parametrize("url", PAGES)
def test_staff_can_open_every_catalog_page(
    staff_client: Client, demo_catalog: None, url: str
) -> None:
    response = staff_client.get(url)
    assert response.status_code == 200, url


def test_staff_can_open_change_pages_with_variants_inline(
    staff_client: Client, demo_catalog: None
) -> None:
    product = Product.objects.get(slug="ceramic-mug")
    response = staff_client.get(f"/admin/catalog/product/{product.pk}/change/")
    assert response.status_code == 200
    assert b"CERAMIC-MUG-BLU" in response.content  # the inline
    variant = Variant.objects.get(sku="CERAMIC-MUG-BLU")
    assert staff_client.get(f"/admin/catalog/variant/{variant.pk}/change/").status_code == 200
    category = Category.objects.get(slug="home")
    assert staff_client.get(f"/admin/catalog/category/{category.pk}/change/").status_code == 200


def test_variant_list_shows_prices_in_major_units(staff_client: Client, demo_catalog: None) -> None:
    response = staff_client.get("/admin/catalog/variant/?q=CERAMIC-MUG-BLU")
    assert b"15.00 USD" in response.content


def test_search_finds_products_by_sku(staff_client: Client, demo_catalog: None) -> None:
    response = staff_client.get("/admin/catalog/product/", {"q": "LEATHER-WALLET-BRN"})
    assert response.context["cl"].result_count == 1


def test_staff_can_add_a_product_with_a_variant(staff_client: Client, demo_catalog: None) -> None:
    category = Category.objects.get(slug="home")
    response = staff_client.post(
        "/admin/catalog/product/add/",
        {
            "name": "Teapot",
            "slug": "teapot",
            "description": "",
            "category": category.pk,
            "active": "on",
            "image_urls": "",
            "variants-TOTAL_FORMS": "1",
            "variants-INITIAL_FORMS": "0",
            "variants-MIN_NUM_FORMS": "0",
            "variants-MAX_NUM_FORMS": "1000",
            "variants-0-position": "0",
            "variants-0-sku": "TEAPOT-1",
            "variants-0-label": "1 l",
            "variants-0-price": "3200",
            "variants-0-currency": "usd",
            "variants-0-stock_change": "10",
            "variants-0-stock_reason": "restock",
            "variants-0-active": "on",
        },
    )
    assert response.status_code == 302, response.context["inline_admin_formsets"][0].formset.errors
    variant = Variant.objects.get(sku="TEAPOT-1")
    assert (variant.product.slug, variant.on_hand, variant.reserved) == ("teapot", 10, 0)
    movement = variant.movements.get()
    assert (
        movement.delta,
        movement.reason,
        movement.staff_user and movement.staff_user.username,
    ) == (
        10,
        "restock",
        "staff",
    )


@pytest.mark.parametrize("url", ["/admin/catalog/product/", "/admin/catalog/variant/add/"])
def test_anonymous_visitors_are_sent_to_the_login_page(client: Client, db: None, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_customers_without_staff_status_are_refused(client: Client, demo_catalog: None) -> None:
    client.force_login(User.objects.create_user("customer", "c@example.com", "pw-for-tests"))
    for url in ["/admin/catalog/product/", "/admin/catalog/variant/"]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_staff_without_catalog_permissions_are_forbidden(
    client: Client, demo_catalog: None
) -> None:
    client.force_login(
        User.objects.create_user("intern", "i@example.com", "pw-for-tests", is_staff=True)
    )
    assert client.get("/admin/catalog/product/").status_code == 403


def _variant_post(variant: Variant, **changes: str) -> dict[str, str]:
    data = {
        "product": str(variant.product_id),
        "sku": variant.sku,
        "label": variant.label,
        "position": str(variant.position),
        "price": str(variant.price),
        "currency": variant.currency,
        "active": "on",
        "stock_change": "",
        "stock_reason": "adjustment",
        "stock_note": "",
    }
    data.update(changes)
    return data


def test_a_variant_page_opened_before_a_checkout_does_not_write_the_old_stock_back(
    staff_client: Client, demo_catalog: None
) -> None:
    variant = Variant.objects.get(sku="CLASSIC-TEE-M")
    form = _variant_post(variant, price="2100")  # read by staff: 500 on hand, 0 reserved
    Variant.objects.filter(pk=variant.pk).update(reserved=2)  # then a checkout reserves 2
    response = staff_client.post(f"/admin/catalog/variant/{variant.pk}/change/", form)
    assert response.status_code == 302
    variant.refresh_from_db()
    assert (variant.price, variant.on_hand, variant.reserved) == (2100, 500, 2)


def test_removing_stock_held_by_pending_orders_is_a_form_error_not_a_500(
    staff_client: Client, demo_catalog: None
) -> None:
    variant = Variant.objects.get(sku="CLASSIC-TEE-M")
    Variant.objects.filter(pk=variant.pk).update(reserved=499)
    response = staff_client.post(
        f"/admin/catalog/variant/{variant.pk}/change/", _variant_post(variant, stock_change="-2")
    )
    assert response.status_code == 200
    assert b"pending orders hold 499" in response.content
    variant.refresh_from_db()
    assert (variant.on_hand, variant.movements.count()) == (500, 1)


def test_a_stock_change_on_the_variant_page_is_a_ledger_row_with_the_staff_user(
    staff_client: Client, demo_catalog: None
) -> None:
    variant = Variant.objects.get(sku="CLASSIC-TEE-M")
    response = staff_client.post(
        f"/admin/catalog/variant/{variant.pk}/change/",
        _variant_post(variant, stock_change="-3", stock_note="broken in storage"),
    )
    assert response.status_code == 302
    variant.refresh_from_db()
    latest = variant.movements.order_by("-pk").first()
    assert variant.on_hand == 497
    assert latest is not None
    assert (latest.delta, latest.reason, latest.on_hand_after) == (-3, "adjustment", 497)
    ledger = staff_client.get("/admin/catalog/stockmovement/")
    assert ledger.status_code == 200
    assert b"broken in storage" in ledger.content
    assert staff_client.get("/admin/catalog/stockmovement/add/").status_code == 403
