"""The built-in checkout return page (/checkout/return?session_id=...): where Stripe sends
the customer back when there is no FRONTEND_URL. It syncs a pending order with Stripe and
says where the order stands, in plain HTML that reloads itself only while processing."""

import re
import urllib.parse
import urllib.request
from typing import Any
from urllib.error import HTTPError

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from djangomart.catalog.models import Variant
from djangomart.orders.models import Order, OrderLine
from djangomart.payments import gateway
from tests.conftest import make_product
from tests.devtools.test_make_run import free_port
from tests.orders.conftest import checkout_post
from tests.payments.builders import order_build
from tests.stripe_sandbox.harness import SandboxServer

RETURN = "/checkout/return"
REFRESH = re.compile(r"<meta http-equiv=\"refresh\" content=\"\d+\">")


def page(client: Client, session_id: str | None) -> Any:
    query = {} if session_id is None else {"session_id": session_id}
    return client.get(RETURN, query)


def state_of(response: Any) -> str:
    found = re.search(r'data-state="(\w+)"', response.content.decode())
    assert found, response.content.decode()
    return found.group(1)


def assert_plain_html(response: Any) -> None:
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode().lower()
    assert "<script" not in html
    assert "javascript:" not in html


def order_in(status: str, *, lines: int = 1) -> Order:
    order = order_build(quantity=2)
    for sku in ["CLASSIC-TEE-L", "ZIP-HOODIE-M"][: lines - 1]:
        variant = Variant.objects.select_related("product").get(sku=sku)
        OrderLine.objects.create(
            order=order, variant=variant, sku=sku, name=sku,
            unit_price=variant.price, quantity=1, line_total=variant.price,
        )  # fmt: skip
    payment_status = "paid" if status in ("paid", "fulfilled") else "unpaid"
    Order.objects.filter(pk=order.pk).update(status=status, payment_status=payment_status)
    return order


@pytest.mark.parametrize(
    ("status", "state", "heading"),
    [
        ("paid", "paid", "Thank you, your payment was received"),
        ("fulfilled", "paid", "Thank you, your payment was received"),
        ("failed", "failed", "Your payment failed"),
        ("canceled", "canceled", "Your order was canceled"),
        ("expired", "expired", "Your checkout expired"),
    ],
)
def test_a_settled_order_shows_its_state_items_and_totals_without_reloading(
    demo_catalog: None, client: Client, status: str, state: str, heading: str
) -> None:
    order = order_in(status)
    response = page(client, order.stripe_checkout_session_id)
    html = response.content.decode()
    assert response.status_code == 200
    assert state_of(response) == state
    assert heading in html
    assert "Classic Tee Size M" in html
    assert "20.00 USD" in html  # unit price
    assert "40.00 USD" in html  # line and order total
    assert not REFRESH.search(html)
    assert_plain_html(response)
    assert response["Cache-Control"].startswith("max-age=0")


def test_the_page_costs_the_same_queries_for_one_line_or_many(
    demo_catalog: None, client: Client
) -> None:
    counts = []
    for lines in (1, 3):
        order = order_in("paid", lines=lines)
        with CaptureQueriesContext(connection) as queries:
            assert page(client, order.stripe_checkout_session_id).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]


@pytest.mark.parametrize("session_id", [None, "", "cs_test_" + "0" * 32])
def test_a_missing_or_unknown_session_is_a_friendly_html_404(
    db: None, client: Client, session_id: str | None
) -> None:
    response = page(client, session_id)
    assert response.status_code == 404
    assert "Order not found" in response.content.decode()
    assert_plain_html(response)


@pytest.mark.parametrize(
    "session_id",
    ["{CHECKOUT_SESSION_ID}", "cs_test_<script>", "x" * 5000, "pi_123"],
)
def test_a_malformed_session_id_is_a_4xx_html_page_not_a_database_error(
    db: None, client: Client, session_id: str
) -> None:
    response = page(client, session_id)
    assert response.status_code == 400
    assert "This link is not valid" in response.content.decode()
    assert_plain_html(response)


@pytest.mark.parametrize("query", ["cs_test_abc%00def", "%00", "cs_test_%00"])
def test_a_nul_byte_in_the_session_id_is_a_400_before_any_query(
    db: None, client: Client, query: str, django_assert_num_queries: Any
) -> None:
    # The NUL guard (djangomart.core.middleware) answers for every path, pages included.
    with django_assert_num_queries(0):
        response = client.get(RETURN + "?session_id=" + query)
    assert response.status_code == 400


def test_only_get_and_head_are_allowed(db: None, client: Client) -> None:
    assert client.post(RETURN + "?session_id=cs_test_abc").status_code == 405


# Pending orders: the page asks Stripe (the sandbox, over HTTP) through the API's sync.


@pytest.fixture
def shop(sandbox: SandboxServer, demo_catalog: None) -> SandboxServer:
    return sandbox


def buy(client: Client, lines: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body = {"email": "ada@example.com", "lines": lines or [{"sku": "CLASSIC-TEE-M", "quantity": 2}]}
    response = checkout_post(client, body)
    assert response.status_code == 201, response.content
    return response.json()  # type: ignore[no-any-return]


def test_the_default_return_urls_are_the_built_in_page(shop: SandboxServer, client: Client) -> None:
    body = buy(client)
    order = Order.objects.get(pk=body["order"]["id"])
    expected = "http://127.0.0.1:8000/checkout/return?session_id={CHECKOUT_SESSION_ID}"
    assert (order.success_url, order.cancel_url) == (expected, expected)


def test_a_canceled_checkout_shows_the_order_as_not_paid_with_a_way_back(
    shop: SandboxServer, client: Client
) -> None:
    body = buy(client)
    response = page(client, body["checkout_session_id"])
    html = response.content.decode()
    assert response.status_code == 200
    assert state_of(response) == "unpaid"
    assert "Your order is not paid" in html
    assert f'href="{body["checkout_url"]}"' in html
    assert not REFRESH.search(html)
    assert Order.objects.get(pk=body["order"]["id"]).status == "pending"


def test_a_payment_still_settling_shows_processing_and_reloads_itself(
    shop: SandboxServer, client: Client
) -> None:
    body = buy(client)
    shop.control(f"checkout/sessions/{body['checkout_session_id']}/pay", {"method": "delayed"})
    response = page(client, body["checkout_session_id"])
    assert state_of(response) == "processing"
    assert REFRESH.search(response.content.decode())
    assert_plain_html(response)
    assert Order.objects.get(pk=body["order"]["id"]).payment_status == "processing"


def test_a_bank_debit_that_failed_shows_failed_though_its_webhook_was_lost(
    shop: SandboxServer, client: Client
) -> None:
    # Stripe leaves the session complete/unpaid; the sync reads its PaymentIntent.
    body = buy(client)
    session_id = body["checkout_session_id"]
    shop.control(f"checkout/sessions/{session_id}/pay", {"method": "delayed"})
    shop.control(f"checkout/sessions/{session_id}/delayed_payment", {"result": "failed"})
    response = page(client, session_id)
    assert state_of(response) == "failed"
    assert not REFRESH.search(response.content.decode())
    assert Order.objects.get(pk=body["order"]["id"]).status == "failed"


def test_a_paid_session_is_synced_and_shown_paid_before_any_webhook(
    shop: SandboxServer, client: Client
) -> None:
    body = buy(client)
    shop.control(
        f"checkout/sessions/{body['checkout_session_id']}/pay", {"card": "4242424242424242"}
    )
    response = page(client, body["checkout_session_id"])
    assert state_of(response) == "paid"
    assert not REFRESH.search(response.content.decode())
    assert Order.objects.get(pk=body["order"]["id"]).status == "paid"


def test_when_stripe_cannot_be_reached_the_page_says_processing_and_reloads(
    shop: SandboxServer, client: Client, settings: Any
) -> None:
    body = buy(client)
    # Stripe is gone (nothing listens there): the sync fails with a DomainError.
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"
    gateway.client_reset()
    response = page(client, body["checkout_session_id"])
    assert response.status_code == 200
    assert state_of(response) == "processing"
    assert REFRESH.search(response.content.decode())


def test_a_reload_within_the_sync_interval_does_not_ask_stripe_again_and_says_processing(
    shop: SandboxServer, client: Client
) -> None:
    body = buy(client)
    assert state_of(page(client, body["checkout_session_id"])) == "unpaid"
    # The API's one-sync-a-second limit holds here too: no answer from Stripe, no verdict.
    assert state_of(page(client, body["checkout_session_id"])) == "processing"


def test_a_pending_order_costs_the_same_queries_for_one_line_or_many(
    shop: SandboxServer, client: Client
) -> None:
    make_product("extra", variants=[("EXTRA-1", 500, 10), ("EXTRA-2", 700, 10)])
    counts = []
    for skus in (["CLASSIC-TEE-M"], ["CLASSIC-TEE-M", "EXTRA-1", "EXTRA-2"]):
        lines = [{"sku": sku, "quantity": 1} for sku in skus]
        body = buy(client, lines)
        with CaptureQueriesContext(connection) as queries:
            assert state_of(page(client, body["checkout_session_id"])) == "unpaid"
        counts.append(len(queries))
    assert counts[0] == counts[1]


# End to end: the browser's path, over real HTTP, from the hosted page back to the shop.


@pytest.mark.django_db(transaction=True)
def test_paying_on_the_sandbox_page_lands_on_the_return_page_showing_paid(
    sandbox: SandboxServer, live_server: Any, settings: Any
) -> None:
    from djangomart.catalog.demo import demo_catalog_seed

    demo_catalog_seed()
    return_url = f"{live_server.url}{RETURN}?session_id={{CHECKOUT_SESSION_ID}}"
    settings.CHECKOUT_SUCCESS_URL = settings.CHECKOUT_CANCEL_URL = return_url
    body = buy(Client())

    # The customer submits the card form on the hosted page; it answers 303 to the shop.
    form = urllib.parse.urlencode({"card_number": "4242424242424242", "action": "card"})
    pay = urllib.request.Request(
        f"{sandbox.url}/checkout/pay/{body['checkout_session_id']}", data=form.encode()
    )
    with pytest.raises(HTTPError) as redirect:
        urllib.request.build_opener(NoRedirect).open(pay, timeout=10)
    assert redirect.value.code == 303
    landing = redirect.value.headers["Location"]
    assert landing == return_url.replace("{CHECKOUT_SESSION_ID}", body["checkout_session_id"])

    with urllib.request.urlopen(landing, timeout=10) as response:
        html = response.read().decode()
    assert 'data-state="paid"' in html
    assert "40.00 USD" in html
    assert Order.objects.get(pk=body["order"]["id"]).status == "paid"


@pytest.mark.django_db(transaction=True)
def test_the_cancel_link_on_the_sandbox_page_lands_on_the_return_page_showing_not_paid(
    sandbox: SandboxServer, live_server: Any, settings: Any
) -> None:
    from djangomart.catalog.demo import demo_catalog_seed

    demo_catalog_seed()
    return_url = f"{live_server.url}{RETURN}?session_id={{CHECKOUT_SESSION_ID}}"
    settings.CHECKOUT_SUCCESS_URL = settings.CHECKOUT_CANCEL_URL = return_url
    body = buy(Client())
    with urllib.request.urlopen(body["checkout_url"], timeout=10) as response:
        hosted = response.read().decode()
    cancel = re.search(r"<a href='([^']+)'>Cancel and return", hosted)
    assert cancel, hosted
    with urllib.request.urlopen(cancel.group(1), timeout=10) as response:
        html = response.read().decode()
    assert 'data-state="unpaid"' in html
    assert Order.objects.get(pk=body["order"]["id"]).status == "pending"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
