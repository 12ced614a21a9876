"""The catalog admin: usable by staff, closed to everyone else."""

import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

from djangomart.catalog.models import Category, Product, StockMovement, Variant
from djangomart.catalog.services import variants_lock
from tests.conftest import make_product
from tests.payments.race_helpers import held_transaction, lock_waiters_wait

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
            "variants-0-stock_token": str(uuid.uuid4()),
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
        "stock_token": str(uuid.uuid4()),  # what the rendered page carries
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


# -- The same stock change sent twice ---------------------------------------------------


def _rendered_tokens(page: bytes) -> dict[str, str]:
    """The one-time stock-change tokens of a rendered admin page, by input name."""
    found = re.findall(rb'name="([\w-]*stock_token)" value="([0-9a-f-]{36})"', page)
    return {name.decode(): value.decode() for name, value in found}


def test_the_same_stock_change_form_sent_twice_is_recorded_once(staff_client: Client) -> None:
    """Staff count a delivery of 12 and press Save; the browser sends the form twice.
    The second POST is a resubmission of the same change, not a second delivery: on
    hand 22, one movement, and staff are told it was already recorded."""
    make_product("tee", variants=[("TEE-M", 2000, 10)])
    variant = Variant.objects.get(sku="TEE-M")
    url = f"/admin/catalog/variant/{variant.pk}/change/"
    page = staff_client.get(url)
    token = _rendered_tokens(page.content)["stock_token"]
    form = _variant_post(
        variant, stock_change="12", stock_reason="restock", stock_note="delivery 4711",
        stock_token=token, _save="Save",
    )  # fmt: skip

    first = staff_client.post(url, form)
    second = staff_client.post(url, form)

    assert first.status_code == 302
    variant.refresh_from_db()
    restocks = StockMovement.objects.filter(variant=variant, note="delivery 4711")
    assert (variant.on_hand, restocks.count()) == (22, 1), (
        f"on hand {variant.on_hand}, {restocks.count()} movements; second POST answered "
        f"{second.status_code}"
    )
    assert second.status_code == 200
    assert b"already recorded" in second.content
    # The page opened again carries a new token: the next delivery is recorded.
    again = _rendered_tokens(staff_client.get(url).content)["stock_token"]
    assert again != token
    third = staff_client.post(url, {**form, "stock_token": again})
    assert third.status_code == 302
    variant.refresh_from_db()
    assert variant.on_hand == 34


@pytest.mark.django_db(transaction=True)
def test_the_same_stock_change_sent_twice_at_once_is_recorded_once(db: None) -> None:
    """Both POSTs validate at the same time: the second waits for the variant's lock,
    then sees the first's movement (not a unique-constraint 500)."""
    make_product("tee", variants=[("TEE-M", 2000, 10)])
    variant = Variant.objects.get(sku="TEE-M")
    staff = User.objects.create_superuser("racer", "r@example.com", "pw-for-tests")
    url = f"/admin/catalog/variant/{variant.pk}/change/"
    clients = [Client(), Client()]
    for client in clients:
        client.force_login(staff)
    token = _rendered_tokens(clients[0].get(url).content)["stock_token"]
    form = _variant_post(variant, stock_change="12", stock_reason="restock", stock_token=token)

    def post(client: Client) -> Any:
        try:
            return client.post(url, form)
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        with held_transaction(lambda: variants_lock([variant.pk])):
            futures = [pool.submit(post, client) for client in clients]
            lock_waiters_wait(2)
        answers = sorted(f.result(30).status_code for f in futures)

    assert answers == [200, 302]
    variant.refresh_from_db()
    assert (variant.on_hand, variant.movements.filter(form_token=token).count()) == (22, 1)


def _product_post(product: Product, token: str, **row: str) -> dict[str, str]:
    variant = product.variants.get()
    data = {
        "name": product.name,
        "slug": product.slug,
        "description": product.description,
        "category": str(product.category_id),
        "active": "on",
        "image_urls": "",
        "variants-TOTAL_FORMS": "1",
        "variants-INITIAL_FORMS": "1",
        "variants-MIN_NUM_FORMS": "0",
        "variants-MAX_NUM_FORMS": "1000",
        "variants-0-id": str(variant.pk),
        "variants-0-product": str(product.pk),
        "variants-0-position": str(variant.position),
        "variants-0-sku": variant.sku,
        "variants-0-label": variant.label,
        "variants-0-price": str(variant.price),
        "variants-0-currency": variant.currency,
        "variants-0-active": "on",
        "variants-0-stock_change": "",
        "variants-0-stock_reason": "restock",
        "variants-0-stock_note": "",
        "variants-0-stock_token": token,
    }
    data.update({f"variants-0-{name}": value for name, value in row.items()})
    return data


def test_the_same_product_page_sent_twice_records_its_rows_stock_change_once(
    staff_client: Client,
) -> None:
    product = make_product("mug", variants=[("MUG-1", 1500, 5)])
    url = f"/admin/catalog/product/{product.pk}/change/"
    token = _rendered_tokens(staff_client.get(url).content)["variants-0-stock_token"]
    form = _product_post(product, token, stock_change="3")

    first = staff_client.post(url, form)
    second = staff_client.post(url, form)

    assert first.status_code == 302
    assert second.status_code == 200
    assert b"already recorded" in second.content
    variant = product.variants.get()
    assert (variant.on_hand, variant.movements.count()) == (8, 2)  # make_product's + ours


def test_rows_added_on_the_product_page_share_a_token_and_are_all_recorded(
    staff_client: Client, demo_catalog: None
) -> None:
    """ "Add another" copies one rendered row, token included: the token is one-time per
    variant, so two new variants from one page both get their stock."""
    token = _rendered_tokens(staff_client.get("/admin/catalog/product/add/").content)[
        "variants-__prefix__-stock_token"
    ]
    data = {
        "name": "Bowl", "slug": "bowl", "description": "",
        "category": str(Category.objects.get(slug="home").pk), "active": "on",
        "image_urls": "", "variants-TOTAL_FORMS": "2", "variants-INITIAL_FORMS": "0",
        "variants-MIN_NUM_FORMS": "0", "variants-MAX_NUM_FORMS": "1000",
    }  # fmt: skip
    for n, sku in enumerate(["BOWL-S", "BOWL-L"]):
        data.update({
            f"variants-{n}-position": str(n), f"variants-{n}-sku": sku,
            f"variants-{n}-label": sku[-1], f"variants-{n}-price": "1200",
            f"variants-{n}-currency": "usd", f"variants-{n}-active": "on",
            f"variants-{n}-stock_change": "4", f"variants-{n}-stock_reason": "restock",
            f"variants-{n}-stock_token": token,
        })  # fmt: skip
    response = staff_client.post("/admin/catalog/product/add/", data)
    assert response.status_code == 302
    stock = Variant.objects.filter(product__slug="bowl").values_list("on_hand", flat=True)
    assert sorted(stock) == [4, 4]


def test_a_stock_change_without_the_pages_token_is_a_form_error_not_a_change(
    staff_client: Client, demo_catalog: None
) -> None:
    variant = Variant.objects.get(sku="CLASSIC-TEE-M")
    form = _variant_post(variant, stock_change="5")
    del form["stock_token"]
    response = staff_client.post(f"/admin/catalog/variant/{variant.pk}/change/", form)
    assert response.status_code == 200
    assert b"reload it" in response.content
    variant.refresh_from_db()
    assert variant.on_hand == 500


def test_a_price_change_without_a_stock_change_needs_no_token(
    staff_client: Client, demo_catalog: None
) -> None:
    variant = Variant.objects.get(sku="CLASSIC-TEE-M")
    form = _variant_post(variant, price="2300")
    del form["stock_token"]
    response = staff_client.post(f"/admin/catalog/variant/{variant.pk}/change/", form)
    assert response.status_code == 302


def test_staff_set_a_variants_low_stock_threshold_and_a_form_without_it_keeps_it(
    staff_client: Client, demo_catalog: None
) -> None:
    variant = Variant.objects.get(sku="CLASSIC-TEE-M")
    url = f"/admin/catalog/variant/{variant.pk}/change/"
    response = staff_client.post(url, _variant_post(variant, low_stock_threshold="12"))
    assert response.status_code == 302
    variant.refresh_from_db()
    assert variant.low_stock_threshold == 12
    assert staff_client.post(url, _variant_post(variant)).status_code == 302
    variant.refresh_from_db()
    assert variant.low_stock_threshold == 12
    refused = staff_client.post(url, _variant_post(variant, low_stock_threshold="-1"))
    assert refused.status_code == 200  # the form again, with its error
    variant.refresh_from_db()
    assert variant.low_stock_threshold == 12
