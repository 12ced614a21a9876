"""The reference storefront's pages (djangomart/storefront), through Django's test
client on real PostgreSQL: what they show, that they cost a constant number of
queries, that bad input is a 4xx page that changes nothing, and that staff edits reach
the cached catalog fragments."""

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from djangomart.carts.models import Cart, CartLine
from djangomart.catalog.models import Category, Product, Variant
from djangomart.storefront import brand as brand_module
from djangomart.storefront.models import BrandSettings
from tests.test_settings import manage

pytestmark = pytest.mark.usefixtures("demo_catalog")

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def queries(client: Client, path: str, **query: Any) -> tuple[int, Any]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path, query)
    return len(captured), response


def text(response: Any) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


def product_make(name: str, category: Category, variants: int = 2) -> Product:
    product = Product.objects.create(
        name=name, slug=name.lower().replace(" ", "-"), category=category
    )
    for i in range(variants):
        Variant.objects.create(
            product=product, sku=f"{product.slug.upper()}-{i}", label=f"Option {i}",
            price=1000 + i, currency="usd", on_hand=5,
        )  # fmt: skip
    return product


@pytest.mark.django_db
def test_the_site_root_leads_to_the_storefront(client: Client) -> None:
    response = client.get("/")
    assert (response.status_code, response["Location"]) == (302, "/shop/")


@pytest.mark.django_db
def test_home_lists_top_level_categories_and_featured_products(client: Client) -> None:
    Product.objects.filter(slug="sunglasses").update(featured=True)
    page = text(client.get("/shop/"))
    assert "Shop by category" in page
    for category in Category.objects.filter(parent__isnull=True):
        assert f'href="/shop/c/{category.slug}/"' in page
    assert 'href="/shop/p/sunglasses/"' in page
    # Only the featured one when staff marked any.
    assert page.count('class="product-card"') == 1


@pytest.mark.django_db
def test_a_listing_costs_the_same_queries_for_one_product_or_a_full_page(client: Client) -> None:
    few = Category.objects.create(name="Few", slug="few")
    many = Category.objects.create(name="Many", slug="many")
    product_make("Lonely One", few)
    for i in range(12):
        product_make(f"Crowd {i}", many, variants=3)
    client.get("/shop/c/few/")  # warm the shared cache and the session
    one, response_one = queries(client, "/shop/c/few/")
    twelve, response_many = queries(client, "/shop/c/many/")
    assert response_one.status_code == response_many.status_code == 200
    assert text(response_many).count('class="product-card"') == 12
    assert one == twelve


@pytest.mark.django_db
def test_a_product_page_costs_the_same_queries_whatever_its_variants(client: Client) -> None:
    category = Category.objects.create(name="Q", slug="q")
    product_make("Two Options", category, variants=2)
    product_make("Nine Options", category, variants=9)
    client.get("/shop/p/two-options/")
    two, _ = queries(client, "/shop/p/two-options/")
    nine, response = queries(client, "/shop/p/nine-options/")
    assert two == nine
    page = text(response)
    assert page.count('type="radio"') == 9
    # Every control is labelled.
    for control in re.findall(r'<input[^>]+id="([^"]+)"', page):
        assert f'for="{control}"' in page, control


@pytest.mark.django_db
def test_the_variant_picker_shows_the_chosen_variants_price_and_availability(
    client: Client,
) -> None:
    category = Category.objects.create(name="P", slug="p")
    product = product_make("Picker", category, variants=2)
    Variant.objects.filter(sku="PICKER-1").update(on_hand=3)
    page = text(client.get(f"/shop/p/{product.slug}/", {"sku": "PICKER-1"}))
    assert "Only 3 left" in page
    assert "10.01 USD" in page
    # htmx asks for the fragment alone.
    fragment = client.get(f"/shop/p/{product.slug}/", {"sku": "PICKER-0"}, HTTP_HX_REQUEST="true")
    assert "<html" not in fragment.content.decode()
    assert "10.00 USD" in text(fragment)


@pytest.mark.django_db
def test_search_sort_and_pages(client: Client) -> None:
    category = Category.objects.create(name="Pages", slug="pages")
    for i in range(14):
        product_make(f"Paged {i:02d}", category, variants=1)
    first = text(client.get("/shop/c/pages/", {"sort": "-name"}))
    assert first.index("Paged 13") < first.index("Paged 12")
    assert "Page 1 of 2" in first
    second = text(client.get("/shop/c/pages/", {"sort": "-name", "page": "2"}))
    assert "Paged 01" in second
    assert "Paged 13" not in second
    found = text(client.get("/shop/products/", {"q": "paged 07"}))
    assert found.count('class="product-card"') == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [{"sort": "evil"}, {"page": "abc"}, {"page": "999"}, {"q": "x" * 10_000}, {"sku": "NOPE"}],
)
def test_odd_query_strings_get_a_page_never_an_error(client: Client, query: dict[str, str]) -> None:
    assert client.get("/shop/products/", query).status_code == 200
    assert client.get("/shop/p/sunglasses/", query).status_code == 200


@pytest.mark.django_db
def test_unknown_pages_are_html_404s_in_the_shops_look(client: Client) -> None:
    for path in ("/shop/p/no-such-thing/", "/shop/c/no-such-thing/", "/shop/nowhere/"):
        response = client.get(path)
        assert response.status_code == 404
        assert response["Content-Type"].startswith("text/html")
    # The API keeps its JSON errors.
    assert client.get("/api/v1/nowhere").json()["code"] == "not_found"


@pytest.mark.django_db
def test_a_staff_edit_reaches_the_cached_front_page(
    client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    Product.objects.filter(slug="sunglasses").update(featured=True)
    assert "Sunglasses" in text(client.get("/shop/"))
    product = Product.objects.get(slug="sunglasses")
    product.name = "Aviators"
    with django_capture_on_commit_callbacks(execute=True):
        product.save()  # as the admin saves it
    page = text(client.get("/shop/"))
    assert "Aviators" in page
    assert "Sunglasses" not in page


@pytest.mark.django_db
def test_the_front_page_is_served_from_the_cache(client: Client) -> None:
    client.get("/shop/")
    cached, _ = queries(client, "/shop/")
    # Stock changes are not staff edits of the catalog: they do not empty the cache.
    Variant.objects.filter(sku__startswith="SUNGLASSES").update(on_hand=0)
    again, _ = queries(client, "/shop/")
    assert cached == again
    assert cached <= 4  # brand, catalog version, the cached fragment, the session


# -- Cart -------------------------------------------------------------------------------


def cart_lines(client: Client) -> dict[str, int]:
    session = client.session.get("storefront_cart")
    if not session:
        return {}
    lines = CartLine.objects.filter(cart_id=session["id"]).select_related("variant")
    return {line.variant.sku: line.quantity for line in lines}


@pytest.mark.django_db
def test_a_guest_fills_changes_and_empties_a_cart_without_javascript(client: Client) -> None:
    response = client.post("/shop/cart/add", {"sku": "SUNGLASSES-BLK", "quantity": "2"})
    assert (response.status_code, response["Location"]) == (302, "/shop/cart/")
    assert cart_lines(client) == {"SUNGLASSES-BLK": 2}
    page = text(client.get("/shop/cart/"))
    assert "Sunglasses" in page
    assert "158.00 USD" in page
    client.post("/shop/cart/update", {"sku": "SUNGLASSES-BLK", "quantity": "3"})
    assert cart_lines(client) == {"SUNGLASSES-BLK": 3}
    client.post("/shop/cart/update", {"sku": "SUNGLASSES-BLK", "quantity": "3", "remove": "1"})
    assert cart_lines(client) == {}
    assert "Your cart is empty" in text(client.get("/shop/cart/"))


@pytest.mark.django_db
def test_htmx_updates_answer_the_carts_fragment(client: Client) -> None:
    client.post("/shop/cart/add", {"sku": "SUNGLASSES-BLK", "quantity": "1"})
    response = client.post(
        "/shop/cart/update", {"sku": "SUNGLASSES-BLK", "quantity": "4"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert "<html" not in response.content.decode()
    assert 'value="4"' in response.content.decode()


@pytest.mark.django_db
def test_the_cart_shows_a_stock_problem(client: Client) -> None:
    client.post("/shop/cart/add", {"sku": "SUNGLASSES-BLK", "quantity": "5"})
    variant = Variant.objects.get(sku="SUNGLASSES-BLK")
    Variant.objects.filter(pk=variant.pk).update(on_hand=variant.reserved + 2)
    page = text(client.get("/shop/cart/"))
    assert "Only 2 left" in page
    assert "Check out</a>" not in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"sku": "NOPE", "quantity": "1"},
        {"sku": "SUNGLASSES-BLK", "quantity": "0"},
        {"sku": "SUNGLASSES-BLK", "quantity": "101"},
        {"sku": "SUNGLASSES-BLK", "quantity": "two"},
        {"sku": "S" * 500, "quantity": "1"},
        {},
    ],
)
def test_a_bad_add_changes_nothing_and_says_why(client: Client, body: dict[str, str]) -> None:
    response = client.post("/shop/cart/add", body, follow=True)
    assert response.status_code == 200
    assert CartLine.objects.count() == 0
    assert 'class="message error"' in response.content.decode()


@pytest.mark.django_db
def test_a_cart_page_costs_the_same_queries_for_one_line_or_many(client: Client) -> None:
    client.post("/shop/cart/add", {"sku": "SUNGLASSES-BLK", "quantity": "1"})
    one, _ = queries(client, "/shop/cart/")
    for sku in ("SUNGLASSES-TOR", "CLASSIC-TEE-M", "ZIP-HOODIE-M"):
        client.post("/shop/cart/add", {"sku": sku, "quantity": "1"})
    four, response = queries(client, "/shop/cart/")
    assert text(response).count("<tr data-sku=") == 4
    assert one == four


@pytest.mark.django_db
def test_a_customers_cart_is_their_account_cart(client: Client) -> None:
    user = User.objects.create_user("ada", "ada@example.com", "pw-Storefront-1")
    client.force_login(user)
    client.post("/shop/cart/add", {"sku": "SUNGLASSES-BLK", "quantity": "1"})
    cart = Cart.objects.get(customer=user)
    assert cart.lines.count() == 1
    assert "storefront_cart" not in client.session


@pytest.mark.django_db
def test_checkout_of_an_empty_cart_goes_back_to_the_cart(client: Client) -> None:
    response = client.get("/shop/checkout/")
    assert (response.status_code, response["Location"]) == (302, "/shop/cart/")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {},
        {"email": "not-an-email"},
        {"email": "a@example.com", "address-name": "Ada"},
        {"email": "a@example.com", "address-name": "A", "address-line1": "x",
         "address-city": "Y", "address-country": "ZZ"},
        {"email": "a@example.com", "address-name": "A\x00", "address-line1": "x",
         "address-city": "Y", "address-country": "GB"},
    ],
)  # fmt: skip
def test_a_checkout_form_with_errors_is_shown_again_and_starts_nothing(
    client: Client, body: dict[str, str]
) -> None:
    from djangomart.orders.models import Order

    client.post("/shop/cart/add", {"sku": "SUNGLASSES-BLK", "quantity": "1"})
    response = client.post("/shop/checkout/", body)
    assert 400 <= response.status_code < 500
    assert not Order.objects.exists()


# -- Brand ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_environments_brand_by_default(client: Client, settings: Any) -> None:
    settings.SHOP_NAME = "Acme Mugs"
    settings.SHOP_FOOTER_TEXT = "Made in Acme"
    page = text(client.get("/shop/"))
    assert "<title>Acme Mugs</title>" in page
    assert "Made in Acme" in page


@pytest.mark.django_db
def test_staff_set_the_brand_in_the_admin(admin_client: Client, client: Client) -> None:
    page = admin_client.get("/admin/storefront/brandsettings/", follow=True)
    assert page.status_code == 200
    response = admin_client.post(
        "/admin/storefront/brandsettings/1/change/",
        {
            "shop_name": "Nordic Tees",
            "primary_color": "#004d40",
            "accent_color": "#ffeb3b",
            "footer_text": "Shipped from Oslo",
            "logo_upload": _upload("logo.png", PNG),
        },
    )
    assert response.status_code == 302, text(response)
    shop = text(client.get("/shop/"))
    assert "Nordic Tees" in shop
    assert "Shipped from Oslo" in shop
    assert "--primary:#004d40" in shop
    # A yellow accent is darkened for text on white, and gets black text on buttons.
    assert "--on-accent:#000000" in shop
    logo_url = re.search(r'<img src="(/shop/brand/logo\?v=\d+)"', shop)
    assert logo_url is not None
    logo = client.get(logo_url.group(1))
    assert (logo.status_code, logo["Content-Type"], logo.content) == (200, "image/png", PNG)
    assert logo["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"primary_color": "red"}, "A colour such as"),
        ({"accent_color": "#12345"}, "A colour such as"),
        ({"logo_upload": ("logo.png", b"<svg onload=alert(1)>")}, "PNG, JPEG or WebP"),
        ({"logo_upload": ("big.png", PNG + b"\x00" * 600_000)}, "at most 512 KB"),
    ],
)
def test_a_bad_brand_setting_is_refused(
    admin_client: Client, fields: dict[str, Any], error: str
) -> None:
    admin_client.get("/admin/storefront/brandsettings/")
    body = {"shop_name": "", "primary_color": "", "accent_color": "", "footer_text": ""}
    for name, value in fields.items():
        body[name] = _upload(*value) if name == "logo_upload" else value
    response = admin_client.post("/admin/storefront/brandsettings/1/change/", body)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert BrandSettings.objects.get(pk=1).logo_content_type == ""


def _upload(name: str, data: bytes) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)


@pytest.mark.parametrize("colour", ["#ffffff", "#ffeb3b", "#00ff00", "#2563eb", "#000000", "#777"])
def test_brand_colours_are_made_readable(colour: str) -> None:
    assert brand_module.contrast(brand_module.readable_on_white(colour), "#ffffff") >= 4.5
    on = brand_module.text_colour_on(colour)
    assert brand_module.contrast(on, brand_module._hex6(colour)) >= 4.5


def test_a_theme_dir_that_is_not_a_folder_refuses_to_start(tmp_path: Any) -> None:
    missing = tmp_path / "no-such-theme"
    result = manage("check", DEBUG="1", THEME_DIR=str(missing))
    assert result.returncode != 0
    assert "THEME_DIR must be a folder" in result.stderr


def test_a_theme_overrides_templates_and_static_files(tmp_path: Any) -> None:
    (tmp_path / "templates" / "storefront").mkdir(parents=True)
    (tmp_path / "templates" / "storefront" / "_account_nav.html").write_text("THEMED NAV")
    (tmp_path / "static" / "storefront").mkdir(parents=True)
    (tmp_path / "static" / "storefront" / "shop.css").write_text("/* themed */")
    script = (
        "from django.template.loader import get_template;"
        "from django.contrib.staticfiles import finders;"
        "print(get_template('storefront/_account_nav.html').render().strip());"
        "print(open(finders.find('storefront/shop.css')).read())"
    )
    result = manage("shell", "-c", script, DEBUG="1", THEME_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "THEMED NAV" in result.stdout
    assert "/* themed */" in result.stdout


@pytest.mark.django_db
def test_a_refused_htmx_update_says_why_in_the_fragment(client: Client) -> None:
    client.post("/shop/cart/add", {"sku": "SUNGLASSES-BLK", "quantity": "1"})
    response = client.post(
        "/shop/cart/update", {"sku": "SUNGLASSES-BLK", "quantity": "500"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 422
    assert 'class="message error"' in response.content.decode()
    assert cart_lines(client) == {"SUNGLASSES-BLK": 1}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/", "javascript:alert(1)"]
)
def test_a_refused_add_never_redirects_off_the_site(client: Client, target: str) -> None:
    response = client.post("/shop/cart/add", {"sku": "NOPE", "quantity": "1", "next": target})
    assert (response.status_code, response["Location"]) == (302, "/shop/cart/")


@pytest.mark.django_db
def test_a_refused_add_goes_back_to_the_product(client: Client) -> None:
    response = client.post(
        "/shop/cart/add", {"sku": "SUNGLASSES-BLK", "quantity": "0", "next": "/shop/p/sunglasses/"}
    )
    assert response["Location"] == "/shop/p/sunglasses/"
