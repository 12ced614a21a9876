"""The cart API without payment: creation, tokens, lines, the cart as the catalog sees
it now (prices, availability, problems), and who may use a cart."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from djangomart.carts.models import Cart, CartLine
from djangomart.carts.selectors import cart_token_hash
from djangomart.catalog.models import Product, StockMovement, Variant
from djangomart.catalog.services import variant_stock_change
from tests.carts.conftest import CartClient, customer_client, customer_make
from tests.conftest import make_product

pytestmark = pytest.mark.django_db

Guest = tuple[CartClient, str]


def lines(body: dict[str, Any]) -> dict[str, int]:
    return {ln["sku"]: ln["quantity"] for ln in body["lines"]}


# -- Creation and tokens --------------------------------------------------------------


def test_a_guest_cart_is_created_with_its_id_and_a_token_stored_only_as_its_hash(
    goods: None,
) -> None:
    response = CartClient().create()
    assert response.status_code == 201, response.content
    body = response.json()
    cart = Cart.objects.get()
    assert body["id"] == str(cart.id)
    assert len(body["token"]) >= 40
    assert cart.token_hash == cart_token_hash(body["token"]) != body["token"]
    assert (body["status"], body["lines"], body["subtotal"], body["currency"]) == (
        "open", [], 0, None
    )  # fmt: skip
    assert body["can_checkout"] is False


def test_a_customer_has_one_open_cart_which_post_carts_and_me_cart_both_return(
    goods: None, customer: User
) -> None:
    shop = customer_client(customer)
    first = shop.create()
    assert first.status_code == 201
    assert first.json()["token"] is None
    again = shop.create().json()
    mine = shop.call("get", "/api/v1/me/cart")
    assert mine.status_code == 200
    assert first.json()["id"] == again["id"] == mine.json()["id"]
    assert Cart.objects.filter(customer=customer).count() == 1


def test_me_cart_creates_the_cart_and_needs_a_customer(goods: None, customer: User) -> None:
    assert Client().get("/api/v1/me/cart").json()["code"] == "not_authenticated"
    body = customer_client(customer).call("get", "/api/v1/me/cart").json()
    assert Cart.objects.get(customer=customer).pk.hex == body["id"].replace("-", "")


# -- Lines ----------------------------------------------------------------------------


def test_adding_a_sku_twice_grows_its_line_and_patch_and_delete_change_it(guest: Guest) -> None:
    shop, cart_id = guest
    assert shop.add(cart_id, "TEE-M", 2).status_code == 200
    body = shop.add(cart_id, "TEE-M", 3).json()
    assert lines(body) == {"TEE-M": 5}
    body = shop.add(cart_id, "MUG-BLUE", 1).json()
    assert lines(body) == {"TEE-M": 5, "MUG-BLUE": 1}
    assert shop.set(cart_id, "TEE-M", 1).json()["lines"][0]["quantity"] == 1
    assert lines(shop.set(cart_id, "TEE-M", 0).json()) == {"MUG-BLUE": 1}
    response = shop.remove(cart_id, "MUG-BLUE")
    assert response.status_code == 200
    assert response.json()["lines"] == []
    assert not CartLine.objects.exists()


def test_the_cart_shows_current_prices_line_totals_subtotal_and_currency(guest: Guest) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M", 2)
    shop.add(cart_id, "MUG-BLUE", 1)
    body = shop.get(cart_id).json()
    tee = body["lines"][0]
    assert (tee["sku"], tee["name"], tee["unit_price"], tee["line_total"]) == (
        "TEE-M", "Classic Tee", 2000, 4000
    )  # fmt: skip
    assert tee["available"] == 10
    assert (body["subtotal"], body["currency"], body["can_checkout"]) == (5500, "usd", True)
    assert body["problems"] == []


def test_unknown_and_no_longer_sold_skus_are_404_unknown_sku_and_change_nothing(
    guest: Guest,
) -> None:
    shop, cart_id = guest
    Product.objects.filter(slug="mug").update(active=False)
    for sku in ("NOPE", "MUG-BLUE"):
        response = shop.add(cart_id, sku)
        assert (response.status_code, response.json()["code"]) == (404, "unknown_sku")
    assert not CartLine.objects.exists()
    assert Cart.objects.get().revision == 0


@pytest.mark.parametrize("quantity", [0, -1, 101, "two", None])
def test_an_added_quantity_outside_1_to_100_is_422(guest: Guest, quantity: Any) -> None:
    shop, cart_id = guest
    response = shop.add(cart_id, "TEE-M", quantity)
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")
    assert not CartLine.objects.exists()


def test_a_patch_outside_0_to_100_is_422_and_an_unknown_line_404(guest: Guest) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M", 1)
    assert shop.set(cart_id, "TEE-M", 101).status_code == 422
    assert shop.set(cart_id, "TEE-M", -1).status_code == 422
    for response in (shop.set(cart_id, "MUG-BLUE", 2), shop.remove(cart_id, "MUG-BLUE")):
        assert (response.status_code, response.json()["code"]) == (404, "line_not_found")
    assert lines(shop.get(cart_id).json()) == {"TEE-M": 1}


def test_adding_past_100_units_of_a_line_is_409_quantity_limit(guest: Guest) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M", 60)
    response = shop.add(cart_id, "TEE-M", 41)
    assert response.status_code == 409
    assert response.json() | {"message": ""} == {
        "code": "quantity_limit", "message": "", "sku": "TEE-M", "quantity": 60,
        "max_quantity": 100,
    }  # fmt: skip
    assert lines(shop.add(cart_id, "TEE-M", 40).json()) == {"TEE-M": 100}


def test_a_cart_holds_at_most_50_lines(guest: Guest) -> None:
    shop, cart_id = guest
    make_product("many", variants=[(f"SKU-{i}", 100, 1) for i in range(51)])
    cart = Cart.objects.get()
    for variant in Variant.objects.filter(sku__startswith="SKU-").order_by("pk")[:50]:
        CartLine.objects.create(cart=cart, variant=variant, quantity=1, unit_price=100)
    response = shop.add(cart_id, "SKU-50")
    assert (response.status_code, response.json()["code"]) == (409, "cart_full")
    assert shop.add(cart_id, "SKU-0").status_code == 200  # an existing line still grows


def test_more_than_available_may_be_added_and_shows_not_enough_stock(guest: Guest) -> None:
    shop, cart_id = guest
    body = shop.add(cart_id, "MUG-BLUE", 7).json()
    assert body["lines"][0]["problems"] == [
        {
            "code": "not_enough_stock",
            "message": "Only 5 of MUG-BLUE available.",
            "available": 5,
            "price_when_added": None,
            "current_price": None,
        }
    ]
    assert body["can_checkout"] is False
    assert body["problems"][0]["sku"] == "MUG-BLUE"


def test_problems_show_out_of_stock_price_changed_and_unavailable_at_this_moment(
    guest: Guest,
) -> None:
    shop, cart_id = guest
    for sku in ("TEE-M", "MUG-BLUE", "POSTER-A2"):
        shop.add(cart_id, sku)
    poster = Variant.objects.get(sku="POSTER-A2")
    variant_stock_change(variant_id=poster.pk, delta=-1, reason=StockMovement.Reason.ADJUSTMENT)
    Variant.objects.filter(sku="TEE-M").update(price=2500)
    Variant.objects.filter(sku="MUG-BLUE").update(active=False)
    body = shop.get(cart_id).json()
    problems = {ln["sku"]: [p["code"] for p in ln["problems"]] for ln in body["lines"]}
    assert problems == {
        "TEE-M": ["price_changed"],
        "MUG-BLUE": ["unavailable"],
        "POSTER-A2": ["out_of_stock"],
    }
    tee = body["lines"][0]
    assert (tee["problems"][0]["price_when_added"], tee["problems"][0]["current_price"]) == (
        2000, 2500
    )  # fmt: skip
    assert tee["unit_price"] == 2500  # the cart always shows today's price

    # Setting the quantity again accepts the new price.
    body = shop.set(cart_id, "TEE-M", 1).json()
    assert body["lines"][0]["problems"] == []


def test_totals_come_from_the_catalog_never_from_the_client(guest: Guest) -> None:
    shop, cart_id = guest
    response = shop.call(
        "post",
        f"/api/v1/carts/{cart_id}/lines",
        {"sku": "TEE-M", "quantity": 1, "unit_price": 1, "price": 1},
    )
    assert response.json()["lines"][0]["unit_price"] == 2000
    assert CartLine.objects.get().unit_price == 2000


# -- Who may use a cart ---------------------------------------------------------------


def every_call(shop: CartClient, cart_id: str) -> list[Any]:
    return [
        shop.get(cart_id),
        shop.add(cart_id, "MUG-BLUE"),
        shop.set(cart_id, "TEE-M", 5),
        shop.remove(cart_id, "TEE-M"),
        shop.checkout(cart_id, {"email": "eve@example.com"}),
    ]


def assert_all_404(responses: list[Any]) -> None:
    for response in responses:
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), (
            response.request["REQUEST_METHOD"],
            response.request["PATH_INFO"],
            response.content,
        )


def test_a_guest_cart_without_its_token_or_with_another_token_is_404_and_unchanged(
    guest: Guest, customer: User
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M", 2)
    other_token = CartClient().create().json()["token"]
    for intruder in (
        CartClient(),
        CartClient(headers={"X-Cart-Token": other_token}),
        CartClient(headers={"X-Cart-Token": "x" * 43}),
        customer_client(customer),
    ):
        assert_all_404(every_call(intruder, cart_id))
    assert lines(shop.get(cart_id).json()) == {"TEE-M": 2}
    assert Cart.objects.get(pk=cart_id).revision == 1


def test_a_customer_cart_is_404_to_other_customers_guests_tokens_and_no_auth(
    goods: None, customer: User
) -> None:
    owner = customer_client(customer)
    cart_id = owner.create().json()["id"]
    owner.add(cart_id, "TEE-M", 2)
    guest_token = CartClient().create().json()["token"]
    for intruder in (
        CartClient(),
        CartClient(headers={"X-Cart-Token": guest_token}),
        customer_client(customer_make("eve@example.com")),
    ):
        assert_all_404(every_call(intruder, cart_id))
    assert lines(owner.get(cart_id).json()) == {"TEE-M": 2}
    assert Cart.objects.get(pk=cart_id).revision == 1


def test_an_unknown_cart_id_is_404_and_a_bad_one_422(guest: Guest) -> None:
    shop, _ = guest
    assert shop.get("00000000-0000-0000-0000-000000000000").status_code == 404
    assert shop.get("not-a-uuid").status_code == 422


def test_a_stale_session_token_is_401_session_expired(guest: Guest) -> None:
    shop, cart_id = guest
    for response in (
        shop.get(cart_id, headers={"X-Session-Token": "stale"}),
        shop.add(cart_id, "TEE-M", headers={"X-Session-Token": "stale"}),
        shop.call("post", "/api/v1/carts", headers={"X-Session-Token": "stale"}),
    ):
        assert (response.status_code, response.json()["code"]) == (401, "session_expired")
    assert not CartLine.objects.exists()


def test_an_app_client_uses_its_customer_cart_with_its_session_token(
    goods: None, customer: User
) -> None:
    login = Client().post(
        "/_allauth/app/v1/auth/login",
        {"email": customer.email, "password": "a-long-test-password-1"},
        content_type="application/json",
    )
    app = CartClient(headers={"X-Session-Token": login.json()["meta"]["session_token"]})
    cart_id = app.create().json()["id"]
    assert app.add(cart_id, "TEE-M").status_code == 200
    assert Cart.objects.get(pk=cart_id).customer == customer


def test_closed_and_merged_carts_are_readable_but_writes_are_409_cart_closed(
    guest: Guest,
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M")
    Cart.objects.filter(pk=cart_id).update(status="merged")
    assert shop.get(cart_id).json()["status"] == "merged"
    for response in every_call(shop, cart_id)[1:]:
        assert (response.status_code, response.json()["code"]) == (409, "cart_closed")
    assert lines(shop.get(cart_id).json()) == {"TEE-M": 1}


def test_cart_writes_are_rate_limited_per_client(guest: Guest, settings: Any) -> None:
    shop, cart_id = guest
    settings.RATE_LIMIT_CART_WRITE = "3/m"  # the cart's creation was the first
    assert shop.add(cart_id, "TEE-M").status_code == 200
    assert shop.add(cart_id, "TEE-M").status_code == 200
    response = shop.add(cart_id, "TEE-M")
    assert (response.status_code, response.json()["code"]) == (429, "rate_limited")
    assert int(response["Retry-After"]) >= 1
    assert lines(shop.get(cart_id).json()) == {"TEE-M": 2}


def test_reading_a_cart_costs_the_same_queries_whatever_its_number_of_lines(
    guest: Guest, django_assert_num_queries: Any
) -> None:
    shop, cart_id = guest
    shop.add(cart_id, "TEE-M")
    with django_assert_num_queries(2):  # the cart, its lines with variants and products
        shop.get(cart_id)
    shop.add(cart_id, "MUG-BLUE")
    shop.add(cart_id, "POSTER-A2")
    with django_assert_num_queries(2):
        shop.get(cart_id)
