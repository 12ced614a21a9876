"""axe-core on every page of the storefront, not only those the purchase journeys pass
through: the listing's search, sorting and pages, errors, every account page (allauth's
included), the address form, an order's page, and the return page's other states."""

from collections.abc import Callable

from djangomart.orders.models import Order
from tests.accounts.helpers import customer_create
from tests.browser.conftest import Journey, Shop
from tests.payments.builders import order_build

PASSWORD = "correct-horse-battery-9"

GUEST_PAGES = [
    ("products", "/shop/products/"),
    ("search", "/shop/products/?q=tee&sort=-price"),
    ("page 2", "/shop/products/?sort=name&page=2"),
    ("category", "/shop/c/accessories/"),
    ("product", "/shop/p/sunglasses/?sku=SUNGLASSES-CLR"),
    ("empty cart", "/shop/cart/"),
    ("not found", "/shop/p/no-such-product/"),
    ("login", "/shop/account/login/"),
    ("signup", "/shop/account/signup/"),
    ("password reset", "/shop/account/password/reset/"),
    ("return, not found", "/checkout/return?session_id=cs_test_nothing_here"),
    ("return, bad link", "/checkout/return?session_id=%3Cbad%3E"),
]


def test_every_guest_page_passes_axe(journey: Callable[..., Journey], shop: Shop) -> None:
    j = journey("every-guest-page")
    for name, path in GUEST_PAGES:
        j.page.goto(shop.path(path))
        j.step(name)
    expired = order_build(session_id="cs_test_every_page_expired")
    Order.objects.filter(pk=expired.pk).update(status=Order.Status.EXPIRED)
    j.page.goto(shop.path("/checkout/return?session_id=cs_test_every_page_expired"))
    j.step("return, expired")
    j.assert_accessible()


def test_every_customer_page_passes_axe(journey: Callable[..., Journey], shop: Shop) -> None:
    customer = customer_create("every.page@example.com", PASSWORD)
    order = order_build(session_id="cs_test_every_page_paid")
    Order.objects.filter(pk=order.pk).update(
        customer=customer, status=Order.Status.PAID, payment_status=Order.PaymentStatus.PAID
    )
    j = journey("every-customer-page")
    page = j.page
    page.goto(shop.path("/shop/account/login/"))
    page.get_by_label("Email").fill("every.page@example.com")
    page.get_by_label("Password").first.fill(PASSWORD)
    page.locator("main form button[type=submit]").first.click()
    page.wait_for_load_state("load")
    for name, path in [
        ("orders", "/shop/account/orders/"),
        ("order", f"/shop/account/orders/{order.pk}/"),
        ("addresses", "/shop/account/addresses/"),
        ("new address", "/shop/account/addresses/new/"),
        ("email", "/shop/account/email/"),
        ("password change", "/shop/account/password/change/"),
        ("return, paid", "/checkout/return?session_id=cs_test_every_page_paid"),
    ]:
        page.goto(shop.path(path))
        j.step(name)
    j.assert_accessible()
