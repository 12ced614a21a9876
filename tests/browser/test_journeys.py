"""Customer journeys through the storefront in Chromium, from the front page to "paid" on
the return page, paying on the Stripe sandbox's hosted page. Every page gets an axe-core
check and a full-page screenshot (test-results/screenshots/<journey>/)."""

import re
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from djangomart.orders.models import Order
from djangomart.payments.models import StripeEvent
from tests.browser.conftest import Journey, Shop

pytestmark = pytest.mark.django_db(transaction=True)

GOOD_CARD = "4242 4242 4242 4242"
DECLINED_CARD = "4000 0000 0000 0002"
PHONE = {"width": 375, "height": 812}
PASSWORD = "correct-horse-battery-9"
ADDRESS = {
    "Full name": "Ada Lovelace",
    "Street and number": "12 St James's Square",
    "Postal code": "SW1Y 4JH",
    "City": "London",
}
# Seconds: the return page reloads itself every 3 s while the payment is confirmed.
PAID_WITHIN_MS = 20_000


def browse_and_fill_cart(j: Journey, shop: Shop) -> None:
    """Home, a category, a product; a variant picked; added; quantity changed to 3."""
    page = j.page
    page.goto(shop.path("/shop/"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Shop by category")
    j.step("home")

    page.get_by_role("link", name="Apparel", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Apparel")
    j.step("category")

    page.get_by_role("link", name="Classic Tee").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Classic Tee")
    j.step("product")

    # The variant picker: htmx swaps in the chosen option's price, stock and form.
    page.get_by_label(re.compile(r"^Size L\b")).check()
    expect(page.locator("form.add-to-cart input[name=sku]")).to_have_value("CLASSIC-TEE-L")
    j.step("variant picked")

    page.get_by_role("button", name="Add to cart").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your cart")
    row = page.locator("tr[data-sku='CLASSIC-TEE-L']")
    expect(row).to_contain_text("Size L")
    j.step("cart")

    page.get_by_label("Quantity of Classic Tee").fill("3")
    row.get_by_role("button", name="Update").click()
    expect(page.get_by_label("Quantity of Classic Tee")).to_have_value("3")
    expect(row.locator("td.num")).to_contain_text("60.00")
    j.step("quantity changed")


def check_out_as_guest(j: Journey, email: str) -> None:
    page = j.page
    page.get_by_role("link", name="Check out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Checkout")
    page.get_by_label("Email").fill(email)
    for label, value in ADDRESS.items():
        page.get_by_label(label).fill(value)
    page.get_by_label("Country").select_option("GB")
    j.step("checkout")
    page.get_by_role("button", name="Continue to payment").click()
    expect(page.get_by_label("Card number")).to_be_visible()
    j.step("payment page")


def pay(j: Journey, card: str) -> None:
    j.page.get_by_label("Card number").fill(card)
    j.page.get_by_role("button", name="Pay", exact=True).click()


def lands_on_paid(j: Journey, shop: Shop, email: str) -> Order:
    """The return page says paid (it reloads itself while the payment is confirmed), and
    the order is paid in the database, the sandbox's webhooks delivered to the server."""
    page = j.page
    expect(page).to_have_url(re.compile(r"/checkout/return\?session_id=cs_"))
    expect(page.locator("[data-state]")).to_have_attribute(
        "data-state", "paid", timeout=PAID_WITHIN_MS
    )
    j.step("paid")
    shop.sandbox.wait_idle()
    order = Order.objects.get(email=email)
    assert (order.status, order.payment_status, order.total) == ("paid", "paid", 6000)
    assert StripeEvent.objects.filter(type="checkout.session.completed").exists()
    return order


def test_a_guest_browses_fills_a_cart_checks_out_and_pays(
    journey: Callable[..., Journey], shop: Shop
) -> None:
    j = journey("guest-purchase")
    browse_and_fill_cart(j, shop)
    check_out_as_guest(j, "guest@example.com")
    pay(j, GOOD_CARD)
    lands_on_paid(j, shop, "guest@example.com")
    j.assert_accessible()


def test_a_declined_card_then_a_good_one_on_the_same_checkout(
    journey: Callable[..., Journey], shop: Shop
) -> None:
    j = journey("declined-then-paid")
    browse_and_fill_cart(j, shop)
    check_out_as_guest(j, "declined@example.com")
    pay(j, DECLINED_CARD)
    expect(j.page.get_by_role("alert")).to_contain_text(re.compile("declined", re.IGNORECASE))
    j.step("declined")
    pay(j, GOOD_CARD)
    lands_on_paid(j, shop, "declined@example.com")
    j.assert_accessible()


def test_the_same_purchase_on_a_phone(journey: Callable[..., Journey], shop: Shop) -> None:
    """375 x 812 (an iPhone's CSS pixels): every step usable without sideways scrolling
    (Journey.step checks the width on each page)."""
    j = journey("phone-purchase", viewport=PHONE, is_mobile=True, has_touch=True)
    browse_and_fill_cart(j, shop)
    check_out_as_guest(j, "phone@example.com")
    pay(j, GOOD_CARD)
    lands_on_paid(j, shop, "phone@example.com")
    j.assert_accessible()


def _mailed_link(to: str, shop: Shop) -> str:
    """The newest link to this shop in a mail to `to` (the test mailbox: the live server
    runs in this process, with Django's locmem backend), on the live server's origin."""
    for message in reversed(mail.outbox):
        if to in message.to:
            for url in re.findall(r"https?://[^\s\"'<>]+", str(message.body)):
                if re.search(r"verify|confirm", url):
                    parts = urlsplit(url)
                    return shop.path(parts.path + (f"?{parts.query}" if parts.query else ""))
    raise AssertionError(f"no verification link mailed to {to}: {[m.to for m in mail.outbox]}")


def _submit(page: Page, name: str) -> None:
    page.get_by_role("button", name=re.compile(name, re.IGNORECASE)).first.click()


def test_a_new_customer_signs_up_verifies_logs_in_with_a_merging_cart_and_buys(
    journey: Callable[..., Journey], shop: Shop
) -> None:
    email = "new.customer@example.com"
    j = journey("account-purchase")
    page = j.page
    signup = page.goto(shop.path("/shop/account/signup/"))
    assert signup is not None
    assert signup.status == 200, "no signup page at /shop/account/signup/"

    # A guest cart first: it must survive the login.
    browse_and_fill_cart(j, shop)

    page.goto(shop.path("/shop/account/signup/"))
    j.step("signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label(re.compile(r"^Password")).first.fill(PASSWORD)
    _submit(page, "sign up|create")
    j.step("signed up")

    page.goto(_mailed_link(email, shop))
    j.step("verify email")
    confirm = page.get_by_role("button", name=re.compile("confirm|verify", re.IGNORECASE))
    if confirm.count():
        confirm.first.click()
    j.step("email verified")

    # Logged in (verifying may already have done it): the guest's cart came along.
    page.goto(shop.path("/shop/account/login/"))
    if page.get_by_label("Email").count():
        page.get_by_label("Email").fill(email)
        page.get_by_label(re.compile(r"^Password")).first.fill(PASSWORD)
        j.step("login")
        _submit(page, "log in|sign in")
    page.goto(shop.path("/shop/cart/"))
    expect(page.get_by_label("Quantity of Classic Tee")).to_have_value("3")
    j.step("merged cart")

    page.goto(shop.path("/shop/account/addresses/"))
    j.step("addresses")
    page.get_by_role("link", name="Add an address").click()
    for label, value in ADDRESS.items():
        page.get_by_label(label).fill(value)
    page.get_by_label("Country").select_option("GB")
    _submit(page, "save|add")
    expect(page.get_by_text("12 St James's Square").first).to_be_visible()
    j.step("address saved")

    page.goto(shop.path("/shop/checkout/"))
    expect(page.get_by_label("Ship to")).to_contain_text("12 St James's Square")
    j.step("checkout")
    page.get_by_role("button", name="Continue to payment").click()
    expect(page.get_by_label("Card number")).to_be_visible()
    j.step("payment page")
    pay(j, GOOD_CARD)
    order = lands_on_paid(j, shop, email)
    assert order.customer is not None
    assert order.customer.email == email

    page.goto(shop.path("/shop/account/orders/"))
    expect(page.get_by_text(str(order.id)[:8]).first).to_be_visible()
    j.step("order history")
    j.assert_accessible()


def test_a_brand_restyles_the_shop_and_it_stays_accessible(
    journey: Callable[..., Journey], shop: Shop
) -> None:
    """Brand settings as a shop owner sets them in the admin: another name, a dark teal
    header and a yellow accent (which the shop must keep readable)."""
    from djangomart.storefront.models import BrandSettings

    BrandSettings.objects.update_or_create(
        pk=1,
        defaults={
            "shop_name": "Nordic Tees",
            "primary_color": "#004d40",
            "accent_color": "#ffd600",
            "footer_text": "Shipped from Oslo since 2026",
        },
    )
    j = journey("branded")
    page = j.page
    page.goto(shop.path("/shop/"))
    expect(page.get_by_role("link", name="Nordic Tees")).to_be_visible()
    j.step("home")
    page.goto(shop.path("/shop/p/classic-tee/"))
    j.step("product")
    page.get_by_role("button", name="Add to cart").focus()
    j.step("button focused")
    j.assert_accessible()


def test_the_same_purchase_with_javascript_off(journey: Callable[..., Journey], shop: Shop) -> None:
    """Every page works without JavaScript: the variant picker's noscript button, the
    cart's forms post and redirect, the return page refreshes itself by meta refresh."""
    j = journey("no-javascript", java_script_enabled=False)
    page = j.page
    page.goto(shop.path("/shop/"))
    page.get_by_role("link", name="Apparel", exact=True).click()
    page.get_by_role("link", name="Classic Tee").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Classic Tee")
    page.get_by_label(re.compile(r"^Size L\b")).check()
    page.get_by_role("button", name="Show this option").click()  # no htmx: a GET
    expect(page).to_have_url(re.compile(r"sku=CLASSIC-TEE-L"))
    expect(page.locator("form.add-to-cart input[name=sku]")).to_have_value("CLASSIC-TEE-L")
    j.step("variant picked")
    page.get_by_role("button", name="Add to cart").click()
    row = page.locator("tr[data-sku='CLASSIC-TEE-L']")
    page.get_by_label("Quantity of Classic Tee").fill("3")
    row.get_by_role("button", name="Update").click()
    expect(page.get_by_label("Quantity of Classic Tee")).to_have_value("3")
    j.step("quantity changed")
    check_out_as_guest(j, "no.script@example.com")
    pay(j, GOOD_CARD)
    lands_on_paid(j, shop, "no.script@example.com")
