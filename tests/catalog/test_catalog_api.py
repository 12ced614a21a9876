"""The storefront catalog API: /api/v1/categories, /api/v1/products[/{slug}]."""

import pytest
from django.conf import settings
from django.test import Client

from djangomart.catalog.demo import DEMO_STOCK
from djangomart.catalog.models import Category, Variant
from tests.conftest import make_product

pytestmark = pytest.mark.django_db


def slugs(response) -> list[str]:
    return [item["slug"] for item in response.json()["items"]]


def test_categories_list_every_category_with_its_parent(api: Client, demo_catalog: None) -> None:
    Category.objects.create(
        name="T-shirts", slug="t-shirts", parent=Category.objects.get(slug="apparel")
    )
    body = api.get("/api/v1/categories").json()
    assert {c["slug"]: c["parent"] for c in body} == {
        "accessories": None,
        "apparel": None,
        "home": None,
        "t-shirts": "apparel",
    }


def test_products_list_the_demo_catalog_with_total_count(api: Client, demo_catalog: None) -> None:
    response = api.get("/api/v1/products")
    body = response.json()
    assert response.status_code == 200
    assert body["count"] == 12
    assert body["page"] == 1
    assert body["page_size"] == 20
    assert len(body["items"]) == 12
    tee = next(item for item in body["items"] if item["slug"] == "classic-tee")
    assert tee == {
        "slug": "classic-tee",
        "name": "Classic Tee",
        "category": {"slug": "apparel", "name": "Apparel"},
        "image_urls": [f"{settings.PUBLIC_URL}/static/catalog/demo/classic-tee.svg"],
        "price_from": 2000,
        "currency": "usd",
        "in_stock": True,
        "variants": [
            {"sku": f"CLASSIC-TEE-{size}", "label": f"Size {size}", "price": 2000,
             "currency": "usd", "available": DEMO_STOCK}
            for size in "SML"
        ],
    }  # fmt: skip


def test_the_product_list_carries_each_products_variants_in_position_order_not_price(
    api: Client, db: None
) -> None:
    make_product(
        "shirt", variants=[("SHIRT-S", 3000, 4), ("SHIRT-M", 2500, 0), ("SHIRT-L", 2000, 9)]
    )
    Variant.objects.filter(sku="SHIRT-L").update(reserved=2)  # held by a pending order
    Variant.objects.create(product=Variant.objects.get(sku="SHIRT-S").product, sku="SHIRT-XL",
                           price=1, active=False)  # fmt: skip
    (item,) = api.get("/api/v1/products").json()["items"]
    assert [(v["sku"], v["price"], v["available"]) for v in item["variants"]] == [
        ("SHIRT-S", 3000, 4),
        ("SHIRT-M", 2500, 0),
        ("SHIRT-L", 2000, 7),
    ]
    detail = api.get("/api/v1/products/shirt").json()
    assert detail["variants"] == item["variants"]


def test_staff_reorder_variants_by_position(api: Client, demo_catalog: None) -> None:
    Variant.objects.filter(sku="CLASSIC-TEE-L").update(position=0)
    Variant.objects.filter(sku="CLASSIC-TEE-S").update(position=2)
    (tee,) = api.get("/api/v1/products", {"q": "classic tee"}).json()["items"]
    assert [v["sku"] for v in tee["variants"]] == [
        "CLASSIC-TEE-L",
        "CLASSIC-TEE-M",
        "CLASSIC-TEE-S",
    ]


def test_products_are_paginated_without_overlap(api: Client, demo_catalog: None) -> None:
    pages = [api.get("/api/v1/products", {"page": n, "page_size": 5}).json() for n in (1, 2, 3)]
    assert [len(p["items"]) for p in pages] == [5, 5, 2]
    assert all(p["count"] == 12 for p in pages)
    seen = [slug for p in pages for slug in (i["slug"] for i in p["items"])]
    assert len(set(seen)) == 12


def test_a_page_past_the_end_is_empty_not_an_error(api: Client, demo_catalog: None) -> None:
    body = api.get("/api/v1/products", {"page": 99}).json()
    assert body["items"] == []
    assert body["count"] == 12


def test_products_filter_by_category_slug(api: Client, demo_catalog: None) -> None:
    response = api.get("/api/v1/products", {"category": "home"})
    assert sorted(slugs(response)) == [
        "cast-iron-pan",
        "ceramic-mug",
        "linen-towel",
        "pour-over-set",
    ]
    assert response.json()["count"] == 4


def test_category_filter_includes_subcategories(api: Client, demo_catalog: None) -> None:
    apparel = Category.objects.get(slug="apparel")
    tees = Category.objects.create(name="T-shirts", slug="t-shirts", parent=apparel)
    make_product("graphic-tee", category=tees, variants=[("GT-1", 2500, 5)])
    assert "graphic-tee" in slugs(api.get("/api/v1/products", {"category": "apparel"}))
    assert slugs(api.get("/api/v1/products", {"category": "t-shirts"})) == ["graphic-tee"]


def test_unknown_category_gives_an_empty_list(api: Client, demo_catalog: None) -> None:
    body = api.get("/api/v1/products", {"category": "no-such-thing"}).json()
    assert body == {"items": [], "count": 0, "page": 1, "page_size": 20}


def test_search_matches_name_description_and_exact_sku(api: Client, demo_catalog: None) -> None:
    assert slugs(api.get("/api/v1/products", {"q": "mug"})) == ["ceramic-mug"]
    assert slugs(api.get("/api/v1/products", {"q": "MERINO"})) == ["wool-socks"]
    assert slugs(api.get("/api/v1/products", {"q": "classic-tee-m"})) == ["classic-tee"]
    assert api.get("/api/v1/products", {"q": "zzz-nothing"}).json()["count"] == 0


@pytest.mark.parametrize(
    ("ordering", "first", "last"),
    [
        ("name", "canvas-tote", "zip-hoodie"),
        ("-name", "zip-hoodie", "canvas-tote"),
        ("price", "wool-socks", "rain-jacket"),
        ("-price", "rain-jacket", "wool-socks"),
    ],
)
def test_products_ordering(
    api: Client, demo_catalog: None, ordering: str, first: str, last: str
) -> None:
    order = slugs(api.get("/api/v1/products", {"ordering": ordering}))
    assert (order[0], order[-1]) == (first, last)


def test_newest_ordering_puts_the_latest_product_first(api: Client, demo_catalog: None) -> None:
    make_product("brand-new", variants=[("BN-1", 100, 1)])
    assert slugs(api.get("/api/v1/products", {"ordering": "newest"}))[0] == "brand-new"


def test_inactive_products_and_variants_are_not_sold(api: Client, db: None) -> None:
    make_product("hidden", active=False, variants=[("H-1", 100, 5)])
    shown = make_product("shown", variants=[("S-CHEAP", 100, 0), ("S-DEAR", 900, 3)])
    Variant.objects.filter(sku="S-CHEAP").update(active=False)
    body = api.get("/api/v1/products").json()
    assert [i["slug"] for i in body["items"]] == ["shown"]
    assert body["items"][0]["price_from"] == 900  # the inactive cheap variant does not count
    detail = api.get(f"/api/v1/products/{shown.slug}").json()
    assert [v["sku"] for v in detail["variants"]] == ["S-DEAR"]
    assert api.get("/api/v1/products/hidden").status_code == 404


def test_out_of_stock_product_is_listed_as_not_in_stock(api: Client, db: None) -> None:
    make_product("sold-out", variants=[("SO-1", 100, 0)])
    make_product("no-variants")
    items = {i["slug"]: i for i in api.get("/api/v1/products").json()["items"]}
    assert items["sold-out"]["in_stock"] is False
    assert items["no-variants"]["in_stock"] is False
    assert items["no-variants"]["price_from"] is None
    assert items["no-variants"]["currency"] is None


def test_product_detail_has_variants_with_price_currency_and_available(
    api: Client, demo_catalog: None
) -> None:
    # 500 on hand, 493 held by pending orders: 7 can be bought.
    Variant.objects.filter(sku="CERAMIC-MUG-BLU").update(reserved=DEMO_STOCK - 7)
    response = api.get("/api/v1/products/ceramic-mug")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Ceramic Mug"
    assert body["category"] == {"slug": "home", "name": "Home & Kitchen"}
    assert body["variants"] == [
        {
            "sku": "CERAMIC-MUG-WHT",
            "label": "White",
            "price": 1400,
            "currency": "usd",
            "available": 500,
        },
        {
            "sku": "CERAMIC-MUG-BLK",
            "label": "Black",
            "price": 1400,
            "currency": "usd",
            "available": 500,
        },
        {
            "sku": "CERAMIC-MUG-BLU",
            "label": "Blue",
            "price": 1500,
            "currency": "usd",
            "available": 7,
        },
    ]


def test_unknown_product_is_a_json_404(api: Client, db: None) -> None:
    response = api.get("/api/v1/products/does-not-exist")
    assert response.status_code == 404
    assert response.json() == {
        "code": "not_found",
        "message": "No product with slug 'does-not-exist'.",
    }


@pytest.mark.parametrize(
    ("params", "location"),
    [
        ({"page": 0}, "query.page"),
        ({"page": "abc"}, "query.page"),
        ({"page_size": 0}, "query.page_size"),
        ({"page_size": 101}, "query.page_size"),
        ({"ordering": "price; drop table"}, "query.ordering"),
        ({"category": "not a slug!"}, "query.category"),
        ({"q": "x" * 101}, "query.q"),
    ],
)
def test_bad_list_parameters_are_a_422_naming_the_parameter(
    api: Client, db: None, params: dict, location: str
) -> None:
    response = api.get("/api/v1/products", params)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert [d["location"] for d in body["details"]] == [location]


def test_wrong_method_is_a_json_405_with_allow(api: Client, db: None) -> None:
    response = api.post("/api/v1/products", data="{}", content_type="application/json")
    assert response.status_code == 405
    assert response["Allow"] == "GET"
    assert response.json()["code"] == "method_not_allowed"


def test_list_endpoints_use_a_constant_number_of_queries(
    api: Client, demo_catalog: None, django_assert_num_queries
) -> None:
    for size in (1, 12, 100):
        # one COUNT, one page of products with prices and stock as subqueries, and
        # the variants of the whole page
        with django_assert_num_queries(3):
            body = api.get("/api/v1/products", {"page_size": size}).json()
        assert len(body["items"]) == min(size, 12)
        assert sum(len(i["variants"]) for i in body["items"]) >= len(body["items"])
    Category.objects.create(name="Sub", slug="sub", parent=Category.objects.get(slug="home"))
    with django_assert_num_queries(1):
        api.get("/api/v1/categories")
    with django_assert_num_queries(2):  # the product and its variants
        api.get("/api/v1/products/sunglasses")


def test_openapi_schema_describes_the_catalog(api: Client, db: None) -> None:
    schema = api.get("/api/v1/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    assert {"/api/v1/categories", "/api/v1/products", "/api/v1/products/{slug}"} <= set(
        schema["paths"]
    )
    assert "ErrorOut" in schema["components"]["schemas"]


def test_interactive_docs_are_served_without_a_cdn(api: Client, db: None) -> None:
    response = api.get("/api/v1/docs")
    assert response.status_code == 200
    assert b"cdn.jsdelivr" not in response.content
