"""The storefront's customer pages, through the Django test client on PostgreSQL:
allauth's own views themed under /shop/account/ (signup, the verification email's
link, login, logout, password reset), the guest cart merged at login, the order
history and an order, and the address book; bad input is a 4xx page that changes
nothing."""

import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.utils import timezone

from djangomart.accounts.addresses import address_create, address_input_validate
from djangomart.accounts.models import Address
from djangomart.carts import services as cart_services
from djangomart.carts.models import Cart
from djangomart.fulfillment.models import Shipment, ShipmentLine
from djangomart.storefront.cart_session import SESSION_KEY
from tests.accounts.helpers import PASSWORD, customer_create
from tests.accounts.me_builders import SHIPPING, order_make
from tests.conftest import make_product

pytestmark = pytest.mark.django_db

HOST = "127.0.0.1"
NEW_PASSWORD = "a-brand-new-secret-77"
ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "line2": "",
    "postal_code": "SW1Y 4JH",
    "city": "London",
    "region": "",
    "country": "GB",
    "phone": "+44 20 7946 0000",
}


@pytest.fixture
def guest() -> Client:
    return Client(HTTP_HOST=HOST)


@pytest.fixture
def goods(db: None) -> None:
    # TEE-M is what me_builders' orders hold.
    make_product("classic-tee", variants=[("TEE-M", 2000, 50)])
    make_product("last-poster", variants=[("POSTER", 1500, 3)])


def logged_in_browser(user: User) -> Client:
    client = Client(HTTP_HOST=HOST)
    client.force_login(user, backend="allauth.account.auth_backends.AuthenticationBackend")
    return client


# Links in the emails are on PUBLIC_URL, whatever Host the request came with.
PUBLIC = re.escape(settings.PUBLIC_URL)


def link_in_email(pattern: str, to: str) -> str:
    """The path of the newest email to `to` whose link matches `pattern`."""
    for message in reversed(mail.outbox):
        if to in message.to:
            match = re.search(pattern, str(message.body))
            if match:
                return match.group(0)
    raise AssertionError(f"no email to {to} with a link like {pattern}")


def path_of(url: str) -> str:
    return urlsplit(url).path


def csrf_input(html: str) -> bool:
    return 'name="csrfmiddlewaretoken"' in html


# -- Signup, verification, login, logout, password reset ----------------------------------


def test_signup_then_the_emails_link_verifies_and_logs_in(guest: Client) -> None:
    page = guest.get("/shop/account/signup/")
    html = page.content.decode()
    assert page.status_code == 200
    # The storefront's page (its header and stylesheet), labelled fields.
    assert "storefront/shop.css" in html
    assert 'class="site-header"' in html
    assert re.search(r'<label for="id_email">', html)
    assert re.search(r'<label for="id_password1">', html)

    answer = guest.post(
        "/shop/account/signup/", {"email": "grace@example.com", "password1": PASSWORD}
    )
    assert answer.status_code == 302
    assert answer["Location"] == "/shop/account/confirm-email/"
    assert guest.get(answer["Location"]).status_code == 200
    assert not EmailAddress.objects.get(email="grace@example.com").verified
    # Mandatory verification: not logged in yet.
    assert guest.get("/shop/account/orders/").status_code == 302

    link = link_in_email(PUBLIC + r"/shop/account/confirm-email/\S+/", "grace@example.com")
    confirm = guest.get(path_of(link))
    assert confirm.status_code == 200
    assert "grace@example.com" in confirm.content.decode()
    done = guest.post(path_of(link))
    assert done.status_code == 302
    assert EmailAddress.objects.get(email="grace@example.com").verified
    orders = guest.get("/shop/account/orders/")
    assert orders.status_code == 200
    assert "My orders" in orders.content.decode()


def test_a_storefront_signup_links_to_the_storefront_even_with_another_frontend(
    guest: Client, settings: Any
) -> None:
    settings.HEADLESS_FRONTEND_URLS = {
        "account_confirm_email": "https://shop.example/account/verify-email/{key}",
        "account_reset_password": "https://shop.example/account/password/reset",
        "account_reset_password_from_key": "https://shop.example/account/password/reset/key/{key}",
        "account_signup": "https://shop.example/account/signup",
    }
    guest.post("/shop/account/signup/", {"email": "web@example.com", "password1": PASSWORD})
    link_in_email(PUBLIC + r"/shop/account/confirm-email/\S+/", "web@example.com")

    # The headless API's signup still links to the brand's frontend.
    app = Client(HTTP_HOST=HOST)
    app.post(
        "/_allauth/app/v1/auth/signup",
        {"email": "app@example.com", "password": PASSWORD},
        content_type="application/json",
    )
    link_in_email(r"https://shop\.example/account/verify-email/\S+", "app@example.com")


def test_without_a_frontend_the_apis_email_links_open_the_storefront(guest: Client) -> None:
    api = Client(HTTP_HOST=HOST)
    api.post(
        "/_allauth/app/v1/auth/signup",
        {"email": "app@example.com", "password": PASSWORD},
        content_type="application/json",
    )
    link = link_in_email(r"https?://[^/\s]+/shop/account/confirm-email/\S+/", "app@example.com")
    assert guest.get(path_of(link)).status_code == 200
    assert guest.post(path_of(link)).status_code == 302
    assert EmailAddress.objects.get(email="app@example.com").verified


def test_login_merges_the_guest_cart_as_cart_merge_caps_it(guest: Client, goods: None) -> None:
    customer = customer_create("ada@example.com")
    own = cart_services.cart_of_customer(customer=customer)
    cart_services.cart_line_add(
        cart_id=own.pk, token=None, customer=customer, sku="POSTER", quantity=2
    )
    # As a guest: 2 posters (3 in stock) and a tee.
    assert guest.post("/shop/cart/add", {"sku": "POSTER", "quantity": 2}).status_code == 302
    assert guest.post("/shop/cart/add", {"sku": "TEE-M", "quantity": 1}).status_code == 302
    guest_id = guest.session[SESSION_KEY]["id"]
    assert 'badge-count">3<' in guest.get("/shop/cart/").content.decode()

    login = guest.get("/shop/account/login/")
    assert login.status_code == 200
    assert csrf_input(login.content.decode())
    answer = guest.post("/shop/account/login/", {"login": "ada@example.com", "password": PASSWORD})
    assert answer.status_code == 302
    assert answer["Location"] == "/shop/account/orders/"

    lines = {ln.variant.sku: ln.quantity for ln in own.lines.select_related("variant")}
    assert lines == {"POSTER": 3, "TEE-M": 1}  # 2 + 2 capped by the 3 in stock
    assert Cart.objects.get(pk=guest_id).status == "merged"
    assert SESSION_KEY not in guest.session
    page = guest.get("/shop/cart/").content.decode()
    assert 'badge-count">4<' in page
    assert "My orders" in page
    assert "Log out" in page
    assert "Sign up" not in page


def test_the_login_after_verifying_a_signup_merges_the_guest_cart(
    guest: Client, goods: None
) -> None:
    guest.post("/shop/cart/add", {"sku": "TEE-M", "quantity": 2})
    guest.post("/shop/account/signup/", {"email": "grace@example.com", "password1": PASSWORD})
    link = link_in_email(PUBLIC + r"/shop/account/confirm-email/\S+/", "grace@example.com")
    assert guest.post(path_of(link)).status_code == 302
    cart = Cart.objects.get(customer__email="grace@example.com", status="open")
    assert [(ln.variant.sku, ln.quantity) for ln in cart.lines.select_related("variant")] == [
        ("TEE-M", 2)
    ]
    assert SESSION_KEY not in guest.session


def test_an_htmx_cart_change_updates_the_headers_count(guest: Client, goods: None) -> None:
    guest.post("/shop/cart/add", {"sku": "TEE-M", "quantity": 1})
    answer = guest.post(
        "/shop/cart/update", {"sku": "TEE-M", "quantity": 4}, HTTP_HX_REQUEST="true"
    )
    assert answer.status_code == 200
    assert '<span id="cart-units" class="badge badge-count" hx-swap-oob="true">4<' in (
        answer.content.decode()
    )


def test_a_wrong_password_is_refused_and_merges_nothing(guest: Client, goods: None) -> None:
    customer_create("ada@example.com")
    guest.post("/shop/cart/add", {"sku": "TEE-M", "quantity": 1})
    answer = guest.post("/shop/account/login/", {"login": "ada@example.com", "password": "no"})
    assert answer.status_code == 422
    assert 'class="error"' in answer.content.decode()
    assert SESSION_KEY in guest.session
    assert not Cart.objects.filter(customer__email="ada@example.com").exists()


def test_logout_is_a_post_and_ends_the_session() -> None:
    client = logged_in_browser(customer_create())
    page = client.get("/shop/account/orders/").content.decode()
    assert re.search(r'<form method="post" action="/shop/account/logout/"', page)
    answer = client.post("/shop/account/logout/")
    assert answer.status_code == 302
    assert answer["Location"] == "/shop/"
    again = client.get("/shop/account/orders/")
    assert again.status_code == 302
    assert again["Location"] == "/shop/account/login/?next=/shop/account/orders/"
    assert "Log in" in client.get("/shop/cart/").content.decode()


GUEST_PAGES = [
    "/shop/account/login/",
    "/shop/account/signup/",
    "/shop/account/confirm-email/",
    "/shop/account/confirm-email/not-a-key/",
    "/shop/account/password/reset/",
    "/shop/account/password/reset/done/",
    "/shop/account/password/reset/key/1-not-a-key/",
    "/shop/account/password/reset/key/done/",
    "/shop/account/inactive/",
]
CUSTOMER_PAGES = [
    "/shop/account/email/",
    "/shop/account/logout/",
    "/shop/account/password/change/",
    "/shop/account/reauthenticate/",
    "/shop/account/sessions/",
]


@pytest.mark.parametrize("path", GUEST_PAGES + CUSTOMER_PAGES)
def test_every_allauth_page_is_a_storefront_page(path: str) -> None:
    client = (
        logged_in_browser(customer_create()) if path in CUSTOMER_PAGES else Client(HTTP_HOST=HOST)
    )
    page = client.get(path)
    assert page.status_code == 200, path
    html = page.content.decode()
    assert 'class="site-header"' in html
    assert html.count("<h1") == 1
    # Every visible control has its label.
    for control in re.findall(r"<(?:input|select|textarea)\b[^>]*>", html):
        if 'type="hidden"' in control or 'type="search"' in control:
            continue
        control_id = re.search(r'id="([^"]+)"', control)
        assert control_id, control
        assert f'for="{control_id.group(1)}"' in html, control


def test_the_customer_pages_send_a_guest_to_login(guest: Client) -> None:
    for path in (
        "/shop/account/orders/",
        "/shop/account/orders/5b7ad7b2-6d3d-4c1a-9d6b-2f5d8c1e4a10/",
        "/shop/account/addresses/",
        "/shop/account/addresses/new/",
    ):
        answer = guest.get(path)
        assert answer.status_code == 302, path
        assert answer["Location"].startswith("/shop/account/login/?next="), path


def test_password_reset_end_to_end(guest: Client) -> None:
    customer_create("ada@example.com")
    assert guest.get("/shop/account/password/reset/").status_code == 200
    answer = guest.post("/shop/account/password/reset/", {"email": "ada@example.com"})
    assert answer.status_code == 302
    assert guest.get(answer["Location"]).status_code == 200  # "done"

    link = link_in_email(PUBLIC + r"/shop/account/password/reset/key/\S+/", "ada@example.com")
    # allauth moves the key into the session and drops it from the address.
    opened = guest.get(path_of(link))
    assert opened.status_code == 302
    form = guest.get(opened["Location"])
    assert form.status_code == 200
    assert 'for="id_password1"' in form.content.decode()
    done = guest.post(opened["Location"], {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert done.status_code == 302
    assert guest.get(done["Location"]).status_code == 200

    fresh = Client(HTTP_HOST=HOST)
    old = fresh.post("/shop/account/login/", {"login": "ada@example.com", "password": PASSWORD})
    assert old.status_code != 302
    new = fresh.post("/shop/account/login/", {"login": "ada@example.com", "password": NEW_PASSWORD})
    assert new.status_code == 302


# -- Order history and an order ------------------------------------------------------------


def test_the_history_lists_only_the_customers_orders_newest_first(goods: None) -> None:
    ada = customer_create("ada@example.com")
    older = order_make(ada, quantity=1, created_ago=timedelta(days=2))
    newer = order_make(ada, quantity=3, created_ago=timedelta(days=1))
    someone = order_make(customer_create("bob@example.com"), email="bob@example.com")
    guest = order_make(None, email="ada@example.com")  # not attached: not theirs yet

    page = logged_in_browser(ada).get("/shop/account/orders/")
    html = page.content.decode()
    assert page.status_code == 200
    assert html.index(str(newer.pk)) < html.index(str(older.pk))
    assert str(someone.pk) not in html
    assert str(guest.pk) not in html
    assert "60.00 USD" in html
    assert "20.00 USD" in html
    assert "Pending" in html


def test_the_history_costs_the_same_queries_whatever_the_page_size(
    goods: None, django_assert_num_queries: Any
) -> None:
    ada = customer_create("ada@example.com")
    client = logged_in_browser(ada)
    order_make(ada)
    client.get("/shop/account/orders/")  # the brand now in the shared cache
    one_order = _queries(client, "/shop/account/orders/")
    for _ in range(11):
        order_make(ada)
    with django_assert_num_queries(one_order):
        full_page = client.get("/shop/account/orders/")
    assert full_page.content.decode().count("/shop/account/orders/") >= 10
    with django_assert_num_queries(one_order):
        second = client.get("/shop/account/orders/?page=2").content.decode()
    assert "Page 2 of 2" in second


def _queries(client: Client, path: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured)


def test_the_header_costs_the_same_queries_whatever_the_cart(guest: Client, goods: None) -> None:
    guest.post("/shop/cart/add", {"sku": "TEE-M", "quantity": 1})
    guest.get("/shop/account/login/")  # shows (and drops) the "added" message
    one_line = _queries(guest, "/shop/account/login/")
    guest.post("/shop/cart/add", {"sku": "POSTER", "quantity": 2})
    guest.get("/shop/account/login/")
    two_lines = _queries(guest, "/shop/account/login/")
    assert one_line == two_lines
    assert 'badge-count">3<' in guest.get("/shop/account/login/").content.decode()


def test_an_order_shows_lines_totals_address_and_tracking(goods: None) -> None:
    ada = customer_create("ada@example.com")
    order = order_make(ada, quantity=2, shipping=SHIPPING)
    shipment = Shipment.objects.create(
        order=order,
        carrier="DHL",
        tracking_number="JD0123",
        tracking_url="https://track.example/JD0123",
        shipped_at=timezone.now(),
    )
    ShipmentLine.objects.create(shipment=shipment, order_line=order.lines.get(), quantity=2)

    page = logged_in_browser(ada).get(f"/shop/account/orders/{order.pk}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Classic Tee" in html
    assert "TEE-M" in html
    assert "40.00 USD" in html
    assert "20.00 USD" in html
    assert "12 St James&#x27;s Square" in html
    assert "United Kingdom" in html
    assert '<a href="https://track.example/JD0123" rel="noopener noreferrer">' in html
    assert "DHL" in html


def test_another_customers_order_and_an_unknown_one_are_404(goods: None) -> None:
    bobs = order_make(customer_create("bob@example.com"), email="bob@example.com")
    client = logged_in_browser(customer_create("ada@example.com"))
    for path in (
        f"/shop/account/orders/{bobs.pk}/",
        "/shop/account/orders/5b7ad7b2-6d3d-4c1a-9d6b-2f5d8c1e4a10/",
        "/shop/account/orders/not-a-uuid/",
    ):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "Page not found" in answer.content.decode()


# -- The address book -----------------------------------------------------------------------


def test_addresses_add_edit_make_default_delete() -> None:
    ada = customer_create("ada@example.com")
    client = logged_in_browser(ada)
    assert "No saved addresses" in client.get("/shop/account/addresses/").content.decode()
    form = client.get("/shop/account/addresses/new/").content.decode()
    assert 'for="id_name"' in form
    assert 'for="id_country"' in form

    assert client.post("/shop/account/addresses/new/", ADDRESS).status_code == 302
    second = {**ADDRESS, "name": "Charles Babbage", "country": "DE"}
    assert client.post("/shop/account/addresses/new/", second).status_code == 302
    first, other = (
        Address.objects.get(name="Ada Lovelace"),
        Address.objects.get(name="Charles Babbage"),
    )
    assert first.is_default
    assert not other.is_default
    listing = client.get("/shop/account/addresses/").content.decode()
    assert "Ada Lovelace" in listing
    assert "Germany" in listing

    edit = client.get(f"/shop/account/addresses/{other.pk}/").content.decode()
    assert 'value="Charles Babbage"' in edit
    changed = {**second, "city": "Berlin", "postal_code": "10117"}
    assert client.post(f"/shop/account/addresses/{other.pk}/", changed).status_code == 302
    other.refresh_from_db()
    assert (other.city, other.postal_code) == ("Berlin", "10117")

    assert client.post(f"/shop/account/addresses/{other.pk}/default").status_code == 302
    other.refresh_from_db()
    first.refresh_from_db()
    assert other.is_default
    assert not first.is_default

    assert client.post(f"/shop/account/addresses/{other.pk}/delete").status_code == 302
    assert list(Address.objects.filter(customer=ada)) == [first]
    first.refresh_from_db()
    assert first.is_default  # the service's rule: the remaining one


def test_another_customers_address_is_404_and_unchanged() -> None:
    bob = customer_create("bob@example.com")
    bobs = address_create(customer=bob, data=address_input_validate(ADDRESS))
    client = logged_in_browser(customer_create("ada@example.com"))
    assert client.get(f"/shop/account/addresses/{bobs.pk}/").status_code == 404
    assert client.post(f"/shop/account/addresses/{bobs.pk}/", ADDRESS).status_code == 404
    assert client.post(f"/shop/account/addresses/{bobs.pk}/default").status_code == 404
    assert client.post(f"/shop/account/addresses/{bobs.pk}/delete").status_code == 404
    bobs.refresh_from_db()
    assert bobs.name == "Ada Lovelace"
    # Deleting and making default are POSTs only.
    assert client.get(f"/shop/account/addresses/{bobs.pk}/delete").status_code == 405


BAD_ADDRESSES = {
    "missing fields": {"name": "Ada"},
    "a 10 kB name": {**ADDRESS, "name": "A" * 10_240},
    "a bad country": {**ADDRESS, "country": "ZZ"},
    "a NUL byte": {**ADDRESS, "line1": "12 St\x00 James"},
    "a control character": {**ADDRESS, "city": "Lon\x07don"},
    "a bad phone": {**ADDRESS, "phone": "call me"},
}


@pytest.mark.parametrize("body", BAD_ADDRESSES.values(), ids=BAD_ADDRESSES.keys())
def test_a_bad_address_is_a_4xx_page_and_changes_nothing(body: dict[str, str]) -> None:
    ada = customer_create("ada@example.com")
    saved = address_create(customer=ada, data=address_input_validate(ADDRESS))
    client = logged_in_browser(ada)

    added = client.post("/shop/account/addresses/new/", body)
    assert 400 <= added.status_code < 500
    assert 'class="error"' in added.content.decode()
    edited = client.post(f"/shop/account/addresses/{saved.pk}/", body)
    assert 400 <= edited.status_code < 500
    assert list(Address.objects.filter(customer=ada)) == [saved]
    saved.refresh_from_db()
    assert saved.line1 == ADDRESS["line1"]
    assert saved.name == ADDRESS["name"]


BAD_SIGNUPS = {
    "missing fields": {},
    "a 10 kB email": {"email": "a" * 10_240 + "@example.com", "password1": PASSWORD},
    "a NUL byte": {"email": "ada\x00@example.com", "password1": PASSWORD},
    "a NUL in the password": {"email": "ada@example.com", "password1": "pass\x00word-long-1"},
}


@pytest.mark.parametrize("body", BAD_SIGNUPS.values(), ids=BAD_SIGNUPS.keys())
def test_a_bad_signup_or_login_is_a_4xx_page_and_creates_nothing(
    guest: Client, body: dict[str, str]
) -> None:
    signup = guest.post("/shop/account/signup/", body)
    assert 400 <= signup.status_code < 500
    assert 'class="error"' in signup.content.decode()
    login = guest.post(
        "/shop/account/login/",
        {"login": body.get("email", ""), "password": body.get("password1", "")},
    )
    assert 400 <= login.status_code < 500
    assert not User.objects.exists()
    assert not mail.outbox
