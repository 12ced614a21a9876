"""POST /api/v1/checkout: an order from database prices and reserved stock, then its
Checkout Session on the sandbox (real HTTP, official SDK), as the issue specifies."""

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from djangomart.catalog.models import Product, Variant
from djangomart.catalog.services import variants_lock
from djangomart.orders.models import Order
from djangomart.payments import gateway
from tests.conftest import make_product
from tests.orders.conftest import checkout_body, checkout_post
from tests.payments.race_helpers import held_transaction, lock_waiters_wait
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = pytest.mark.django_db


def stock(sku: str) -> int:
    """What can still be sold (on hand minus reserved)."""
    return Variant.objects.get(sku=sku).available


def sessions_on_stripe(sandbox: SandboxServer) -> list[Any]:
    return list(sandbox.client().v1.checkout.sessions.list({"limit": 100}).data)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- The happy path -------------------------------------------------------------------


def test_checkout_answers_201_with_the_order_its_access_token_and_its_checkout_session(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    response = checkout_post(client)
    assert response.status_code == 201, response.content
    body = response.json()
    order = Order.objects.get()
    assert set(body) == {"order", "access_token", "checkout_url", "checkout_session_id"}
    assert body["order"]["id"] == str(order.id)
    assert (body["order"]["status"], body["order"]["payment_status"]) == ("pending", "unpaid")
    assert body["access_token"] == order.access_token
    assert body["checkout_session_id"] == order.stripe_checkout_session_id
    assert body["checkout_url"] == order.checkout_url
    assert body["checkout_url"].startswith(sandbox.url)


def test_checkout_prices_the_order_from_the_database(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    lines = [{"sku": "TEE-M", "quantity": 2}, {"sku": "MUG-BLUE", "quantity": 3}]
    body = checkout_post(client, checkout_body(lines=lines)).json()
    assert (body["order"]["currency"], body["order"]["total"]) == ("usd", 2 * 2000 + 3 * 1500)
    assert [(ln["sku"], ln["unit_price"], ln["line_total"]) for ln in body["order"]["lines"]] == [
        ("TEE-M", 2000, 4000),
        ("MUG-BLUE", 1500, 4500),
    ]


def test_prices_sent_by_the_client_are_ignored_and_never_change_the_total(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    body = checkout_body(
        lines=[{"sku": "TEE-M", "quantity": 2, "price": 1, "unit_price": 1, "line_total": 2}],
        total=2,
        subtotal=2,
        amount=2,
        currency="jpy",
    )
    response = checkout_post(client, body)
    assert response.status_code == 201, response.content
    order = Order.objects.get()
    session = sandbox.client().v1.checkout.sessions.retrieve(response.json()["checkout_session_id"])
    assert (order.currency, order.total, order.lines.get().unit_price) == ("usd", 4000, 2000)
    assert (session.currency, session.amount_total) == ("usd", 4000)


def test_checkout_reserves_the_stock_of_every_line(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    lines = [{"sku": "TEE-M", "quantity": 2}, {"sku": "MUG-BLUE", "quantity": 5}]
    assert checkout_post(client, checkout_body(lines=lines)).status_code == 201
    assert (stock("TEE-M"), stock("MUG-BLUE")) == (10 - 2, 5 - 5)


def test_the_same_sku_on_two_lines_becomes_one_line_with_both_quantities(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    lines = [{"sku": "TEE-M", "quantity": 2}, {"sku": "TEE-M", "quantity": 3}]
    body = checkout_post(client, checkout_body(lines=lines)).json()
    assert [(ln["sku"], ln["quantity"]) for ln in body["order"]["lines"]] == [("TEE-M", 5)]
    assert (body["order"]["total"], stock("TEE-M")) == (10000, 5)


def test_a_json_client_without_cookies_needs_no_csrf_token(
    goods: None, sandbox: SandboxServer
) -> None:
    response = checkout_post(Client(enforce_csrf_checks=True))
    assert response.status_code == 201, response.content


def test_many_rapid_checkouts_from_one_client_are_never_throttled(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    Variant.objects.filter(sku="TEE-M").update(on_hand=100)
    one_each = checkout_body(lines=[{"sku": "TEE-M", "quantity": 1}])
    statuses = [checkout_post(client, one_each).status_code for _ in range(25)]
    assert statuses == [201] * 25


# -- What Stripe receives -------------------------------------------------------------


def test_the_checkout_session_names_the_order_in_metadata_and_client_reference_id(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    body = checkout_post(client).json()
    session = sandbox.client().v1.checkout.sessions.retrieve(body["checkout_session_id"])
    order_id = body["order"]["id"]
    assert session.to_dict()["metadata"] == {"order_id": order_id}
    assert session.client_reference_id == order_id
    assert session.customer_email == "ada@example.com"


def test_the_payment_intent_of_the_session_names_the_order_in_its_metadata(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    body = checkout_post(client).json()
    attempt = sandbox.control(
        f"checkout/sessions/{body['checkout_session_id']}/pay", {"card": "4000000000000002"}
    )
    assert attempt["payment_intent"]["metadata"] == {"order_id": body["order"]["id"]}


def test_the_checkout_session_has_the_order_lines_at_database_prices(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    lines = [{"sku": "TEE-M", "quantity": 2}, {"sku": "MUG-BLUE", "quantity": 1}]
    body = checkout_post(client, checkout_body(lines=lines)).json()
    items = sandbox.client().v1.checkout.sessions.line_items.list(body["checkout_session_id"])
    lines_sent = [item.to_dict() for item in items.data]
    assert [(i["quantity"], i["price"]["unit_amount"], i["amount_total"]) for i in lines_sent] == [
        (2, 2000, 4000),
        (1, 1500, 1500),
    ]
    assert {i["currency"] for i in lines_sent} == {"usd"}
    assert all(i["description"] for i in lines_sent)


def test_a_variant_with_a_long_product_name_and_label_can_be_bought(
    db: None, sandbox: SandboxServer, client: Client
) -> None:
    """Stripe takes at most 250 characters as a line item's name; the shop sends
    "<product name> <variant label>", up to 200 + 1 + 120 characters. The name sent is
    cut with an ellipsis; the order line keeps it whole."""
    product = make_product("long", variants=[("LONG-1", 2500, 5)])
    # Within the model's limits (name 200, label 120), as the admin would save them.
    Product.objects.filter(pk=product.pk).update(name="Organic cotton tee " * 10)
    Variant.objects.filter(sku="LONG-1").update(label="Size M / Heather grey / Long sleeve " * 3)
    full = f"{'Organic cotton tee ' * 10} {'Size M / Heather grey / Long sleeve ' * 3}".strip()
    assert len(full) > 250

    response = checkout_post(client, checkout_body(lines=[{"sku": "LONG-1", "quantity": 1}]))

    assert response.status_code == 201, response.json()
    assert Order.objects.get().lines.get().name == full
    items = sandbox.client().v1.checkout.sessions.line_items.list(
        response.json()["checkout_session_id"]
    )
    sent = items.data[0].description
    assert sent is not None
    assert len(sent) <= 250
    assert sent.endswith("\N{HORIZONTAL ELLIPSIS}")
    assert full.startswith(sent[:-1])


def test_the_checkout_session_expires_at_the_time_stored_on_the_order(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    before = timezone.now()
    body = checkout_post(client).json()
    after = timezone.now()
    order = Order.objects.get()
    session = sandbox.client().v1.checkout.sessions.retrieve(body["checkout_session_id"])
    assert session.expires_at == int(order.expires_at.timestamp())
    # Counted from the order's creation, inside the request (whole seconds, as Stripe's).
    lifetime = timedelta(minutes=settings.CHECKOUT_EXPIRY_MINUTES)
    assert (before + lifetime).replace(microsecond=0) <= order.expires_at <= after + lifetime


def test_without_redirect_urls_the_session_uses_the_configured_defaults(
    goods: None, sandbox: SandboxServer, client: Client, settings: Any
) -> None:
    settings.CHECKOUT_SUCCESS_URL = "https://shop.example.com/thanks?s={CHECKOUT_SESSION_ID}"
    settings.CHECKOUT_CANCEL_URL = "https://shop.example.com/basket"
    settings.CHECKOUT_REDIRECT_HOSTS = ["shop.example.com"]
    body = checkout_post(client).json()
    session = sandbox.client().v1.checkout.sessions.retrieve(body["checkout_session_id"])
    assert session.success_url == "https://shop.example.com/thanks?s={CHECKOUT_SESSION_ID}"
    assert session.cancel_url == "https://shop.example.com/basket"


def test_redirect_urls_on_an_allowed_host_are_passed_to_the_session(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    body = checkout_body(
        success_url="http://localhost:3000/done?id={CHECKOUT_SESSION_ID}",
        cancel_url="http://127.0.0.1:3000/cart",
    )
    created = checkout_post(client, body).json()
    session = sandbox.client().v1.checkout.sessions.retrieve(created["checkout_session_id"])
    assert (session.success_url, session.cancel_url) == (body["success_url"], body["cancel_url"])


@pytest.mark.django_db(transaction=True)
def test_no_order_or_stock_row_is_locked_while_stripe_is_called(
    goods: None, sandbox: SandboxServer
) -> None:
    sandbox.configure(api_latency_min=1.0, api_latency_max=1.0)
    answers: list[Any] = []

    def buy() -> None:
        try:
            answers.append(checkout_post(Client()))
        finally:
            connection.close()

    buyer = threading.Thread(target=buy)
    buyer.start()
    deadline = time.monotonic() + 10
    while not Order.objects.exists():  # committed; the Stripe call is now in flight
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with transaction.atomic():  # NOWAIT: raises at once if any of these rows is locked
        order = Order.objects.select_for_update(nowait=True).get()
        Variant.objects.select_for_update(nowait=True).get(sku="TEE-M")
    buyer.join(10)
    assert order.stripe_checkout_session_id is None  # we looked during the call
    assert [a.status_code for a in answers] == [201]


# -- Refusals -------------------------------------------------------------------------


def test_more_than_is_in_stock_is_refused_with_409_out_of_stock_and_nothing_reserved(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    lines = [{"sku": "TEE-M", "quantity": 2}, {"sku": "POSTER-A2", "quantity": 2}]
    response = checkout_post(client, checkout_body(lines=lines))
    assert response.status_code == 409
    assert response.json()["code"] == "out_of_stock"
    assert (stock("TEE-M"), stock("POSTER-A2")) == (10, 1)
    assert not Order.objects.exists()
    assert sessions_on_stripe(sandbox) == []


def test_an_unknown_sku_is_refused_with_404_unknown_sku_and_nothing_reserved(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    lines = [{"sku": "TEE-M", "quantity": 2}, {"sku": "NO-SUCH-SKU", "quantity": 1}]
    response = checkout_post(client, checkout_body(lines=lines))
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_sku"
    assert stock("TEE-M") == 10
    assert not Order.objects.exists()


def test_a_variant_that_is_no_longer_sold_is_refused_like_an_unknown_sku(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    Variant.objects.filter(sku="TEE-M").update(active=False)
    response = checkout_post(client)
    assert (response.status_code, response.json()["code"]) == (404, "unknown_sku")
    assert stock("TEE-M") == 10


@pytest.mark.parametrize("quantity", [0, -1, 101, 1.5, "two", None, [2]])
def test_an_invalid_quantity_is_refused_with_422(
    goods: None, sandbox: SandboxServer, client: Client, quantity: Any
) -> None:
    response = checkout_post(client, checkout_body(lines=[{"sku": "TEE-M", "quantity": quantity}]))
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")
    assert stock("TEE-M") == 10
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        checkout_body(lines=[]),
        checkout_body(lines=None),
        checkout_body(lines=[{"sku": "TEE-M"}]),
        checkout_body(lines=[{"sku": "", "quantity": 1}]),
        checkout_body(email="not-an-email"),
        checkout_body(email=""),
        {"lines": [{"sku": "TEE-M", "quantity": 1}]},
    ],
    ids=[
        "empty-lines",
        "null-lines",
        "no-quantity",
        "empty-sku",
        "bad-email",
        "empty-email",
        "no-email",
    ],
)
def test_a_malformed_checkout_is_refused_with_422(
    goods: None, sandbox: SandboxServer, client: Client, body: dict[str, Any]
) -> None:
    response = checkout_post(client, body)
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("success_url", "https://evil.example.com/thanks"),
        ("cancel_url", "https://evil.example.com/cart"),
        ("success_url", "https://localhost.evil.example.com/thanks"),
        ("success_url", "javascript:alert(1)"),
        ("cancel_url", "/cart"),
        ("success_url", "ftp://localhost/thanks"),
        # Read as localhost by urlsplit, as evil.example.com by browsers:
        ("success_url", "https://evil.example.com\\@localhost/thanks"),
        ("success_url", "https://user@localhost/thanks"),
        ("cancel_url", "https://localhost/cart\n"),
    ],
)
def test_a_redirect_url_off_the_allowed_hosts_is_refused_with_422(
    goods: None, sandbox: SandboxServer, client: Client, field: str, url: str
) -> None:
    response = checkout_post(client, checkout_body(**{field: url}))
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")
    assert stock("TEE-M") == 10
    assert not Order.objects.exists()
    assert sessions_on_stripe(sandbox) == []


# -- Idempotency-Key ------------------------------------------------------------------


def test_a_retry_with_the_same_idempotency_key_returns_the_same_order_and_session(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    first = checkout_post(client, HTTP_IDEMPOTENCY_KEY="retry-me-1-0123456789abcdef")
    again = checkout_post(client, HTTP_IDEMPOTENCY_KEY="retry-me-1-0123456789abcdef")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert Order.objects.count() == 1
    assert len(sessions_on_stripe(sandbox)) == 1


def test_a_retry_with_the_same_idempotency_key_reserves_the_stock_once(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    for _ in range(3):
        assert (
            checkout_post(client, HTTP_IDEMPOTENCY_KEY="retry-me-2-0123456789abcdef").status_code
            == 201
        )
    assert stock("TEE-M") == 10 - 2


def test_the_same_idempotency_key_with_another_body_is_refused_with_409(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    first = checkout_post(client, HTTP_IDEMPOTENCY_KEY="reused-0123456789abcdef")
    other = checkout_body(lines=[{"sku": "TEE-M", "quantity": 3}])
    response = checkout_post(client, other, HTTP_IDEMPOTENCY_KEY="reused-0123456789abcdef")
    assert (response.status_code, response.json()["code"]) == (409, "idempotency_key_reused")
    assert [(str(o.id), o.total) for o in Order.objects.all()] == [
        (first.json()["order"]["id"], 4000)
    ]
    assert stock("TEE-M") == 10 - 2


def test_requests_without_an_idempotency_key_are_independent_orders(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    first = checkout_post(client).json()
    second = checkout_post(client).json()
    assert first["order"]["id"] != second["order"]["id"]
    assert first["checkout_session_id"] != second["checkout_session_id"]
    assert stock("TEE-M") == 10 - 4


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_the_same_idempotency_key_create_exactly_one_order(
    goods: None, sandbox: SandboxServer
) -> None:
    threads = 6
    barrier = threading.Barrier(threads)

    def attempt() -> Any:
        try:
            barrier.wait(10)
            return checkout_post(Client(), HTTP_IDEMPOTENCY_KEY="double-click-0123456789abcdef")
        finally:
            connection.close()

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(attempt) for _ in range(threads)]
        answers = [future.result(30) for future in futures]
    assert [a.status_code for a in answers] == [201] * threads, [a.content for a in answers]
    assert len({a.json()["order"]["id"] for a in answers}) == 1
    assert len({a.json()["checkout_session_id"] for a in answers}) == 1
    assert Order.objects.count() == 1
    assert stock("TEE-M") == 10 - 2
    assert len(sessions_on_stripe(sandbox)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_double_click_on_the_last_unit_answers_both_clicks_with_the_one_order(
    goods: None, sandbox: SandboxServer
) -> None:
    """Both clicks miss the key (no order yet) and queue for the variant that another
    transaction holds. The second click is the same request: it must get the first's
    order (201) or be told to retry (409 checkout_in_progress), not that the unit it just
    reserved is gone (409 out_of_stock)."""
    variant = Variant.objects.get(sku="POSTER-A2")  # the last unit
    body = checkout_body(lines=[{"sku": "POSTER-A2", "quantity": 1}])
    barrier = threading.Barrier(2)

    def click() -> Any:
        try:
            barrier.wait(10)
            return checkout_post(Client(), body, HTTP_IDEMPOTENCY_KEY="double-click-7f3a9c2e4b1d")
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        with held_transaction(lambda: variants_lock([variant.pk])):
            futures = [pool.submit(click) for _ in range(2)]
            lock_waiters_wait(2)  # one on the variant, one on the key (or the variant)
        answers = [f.result(60) for f in futures]

    order = Order.objects.get()
    for answer in answers:
        assert answer.status_code in (201, 409), answer.content
        if answer.status_code == 201:
            assert answer.json()["order"]["id"] == str(order.id)
        else:
            assert answer.json()["code"] == "checkout_in_progress", answer.content
    assert stock("POSTER-A2") == 0
    assert len(sessions_on_stripe(sandbox)) == 1


# -- Stripe unreachable ---------------------------------------------------------------


def test_when_stripe_keeps_failing_the_answer_is_502_with_the_order_id_and_access_token(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    sandbox.configure(api_error_rate=1.0)
    response = checkout_post(client)
    assert response.status_code == 502
    body = response.json()
    order = Order.objects.get()
    assert body["code"] == "payment_provider_unavailable"
    assert (body["id"], body["access_token"]) == (str(order.id), order.access_token)


def test_when_stripe_cannot_be_reached_the_order_is_canceled_and_its_stock_released(
    goods: None, sandbox: SandboxServer, client: Client, settings: Any
) -> None:
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{closed_port()}"
    gateway.client_reset()
    response = checkout_post(client)
    assert (response.status_code, response.json()["code"]) == (502, "payment_provider_unavailable")
    order = Order.objects.get()
    assert (order.status, order.stripe_checkout_session_id) == ("canceled", None)
    assert stock("TEE-M") == 10


def test_a_retry_with_the_same_key_after_an_outage_starts_a_new_order_once_stripe_is_back(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    """An outage answers 502 payment_provider_unavailable, "try again later". A client
    that does, with the same Idempotency-Key as retries should, must not get the
    canceled order's 502 again for 24 hours: a transient failure is not the key's final
    answer (Stripe does not store 5xx results either)."""
    sandbox.configure(api_error_rate=1.0)
    first = checkout_post(client, HTTP_IDEMPOTENCY_KEY="flaky-network-0123456789abcdef")
    assert (first.status_code, first.json()["code"]) == (502, "payment_provider_unavailable")

    sandbox.configure(api_error_rate=0.0)  # Stripe is back
    again = checkout_post(client, HTTP_IDEMPOTENCY_KEY="flaky-network-0123456789abcdef")

    assert again.status_code == 201, again.json()
    assert again.json()["order"]["id"] != first.json()["id"]
    canceled = Order.objects.get(pk=first.json()["id"])
    assert (canceled.status, canceled.idempotency_key) == ("canceled", None)
    assert stock("TEE-M") == 10 - 2  # the canceled order's units came back
    # And the key now belongs to the new order, like any key.
    third = checkout_post(client, HTTP_IDEMPOTENCY_KEY="flaky-network-0123456789abcdef")
    assert third.json()["order"]["id"] == again.json()["order"]["id"]
    assert Order.objects.count() == 2


def test_a_refused_connection_also_lets_the_key_go(
    goods: None, sandbox: SandboxServer, client: Client, settings: Any
) -> None:
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{closed_port()}"
    gateway.client_reset()
    first = checkout_post(client, HTTP_IDEMPOTENCY_KEY="flaky-network-0123456789abcdef")
    settings.STRIPE_API_BASE = sandbox.url
    gateway.client_reset()
    again = checkout_post(client, HTTP_IDEMPOTENCY_KEY="flaky-network-0123456789abcdef")
    assert (first.status_code, again.status_code) == (502, 201)
    assert Order.objects.get(pk=first.json()["id"]).status == "canceled"


def test_a_retry_with_the_same_key_after_a_refusal_gets_the_canceled_order_again(
    db: None, sandbox: SandboxServer, client: Client
) -> None:
    """A refusal (4xx) is the key's answer, as Stripe keeps 4xx answers: the same request
    would be refused again, so no second order is made (and no second reservation)."""
    make_product("sticker", variants=[("STICKER", 10, 5)])  # under Stripe's 50-cent minimum
    body = checkout_body(lines=[{"sku": "STICKER", "quantity": 1}])
    first = checkout_post(client, body, HTTP_IDEMPOTENCY_KEY="refused-0123456789abcdef")
    assert (first.status_code, first.json()["code"]) == (502, "payment_provider_rejected")
    again = checkout_post(client, body, HTTP_IDEMPOTENCY_KEY="refused-0123456789abcdef")
    assert again.status_code == 502
    assert again.json()["id"] == first.json()["id"]
    assert Order.objects.count() == 1
    assert Order.objects.get().idempotency_key is not None
    assert stock("STICKER") == 5


class StripeDown:
    """A Stripe that answers every request 500 (retryable), recording what it was sent."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None, bytes]] = []
        down = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                down.requests.append((self.path, self.headers.get("Idempotency-Key"), body))
                answer = json.dumps({"error": {"type": "api_error", "message": "down"}}).encode()
                self.send_response(500)
                self.send_header("Stripe-Should-Retry", "true")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_sdk_retries_a_failing_stripe_twice_with_the_same_key_and_identical_parameters(
    goods: None, stripe_settings: Any, client: Client
) -> None:
    down = StripeDown()
    stripe_settings.STRIPE_API_BASE = down.url
    gateway.client_reset()
    try:
        response = checkout_post(client)
    finally:
        down.stop()
    order_id = response.json()["id"]
    assert response.status_code == 502
    assert len(down.requests) == 1 + 2
    assert {(path, key) for path, key, _ in down.requests} == {
        ("/v1/checkout/sessions", f"checkout:{order_id}")
    }
    assert len({body for _, _, body in down.requests}) == 1


# -- The same parameters on every retry -----------------------------------------------


def test_a_session_answer_lost_on_the_network_is_retried_with_identical_parameters(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    # The sandbox creates the session, then drops the connection instead of answering.
    # The gateway's retry (same Idempotency-Key) gets Stripe's stored answer (a replay is
    # never dropped), or an idempotency_error (and a 502 here) had any parameter changed.
    sandbox.configure(api_timeout_rate=1.0, api_timeout_seconds=1.0)
    response = checkout_post(client)
    sandbox.configure(api_timeout_rate=0.0)
    assert response.status_code == 201, response.content

    # The retry really happened: the sandbox saw the same request twice.
    posts = sandbox.requests(method="POST", path="/v1/checkout/sessions")
    assert [(p["answer_dropped"], p["idempotent_replayed"], p["status"]) for p in posts] == [
        (True, False, 200),
        (False, True, 200),
    ]
    order = Order.objects.get()
    assert {p["idempotency_key"] for p in posts} == {f"checkout:{order.id}"}
    assert posts[0]["params"] == posts[1]["params"]
    sessions = sessions_on_stripe(sandbox)
    assert [s.id for s in sessions] == [response.json()["checkout_session_id"]]
    assert order.stripe_checkout_session_id == sessions[0].id


def test_a_checkout_retried_after_the_session_was_created_but_not_stored_gets_that_session(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    first = checkout_post(client, HTTP_IDEMPOTENCY_KEY="crash-after-stripe-0123456789abcdef").json()
    # As if the web process died after Stripe answered and before the session id was
    # stored: the order is pending without a session.
    Order.objects.update(stripe_checkout_session_id=None, checkout_url="")
    time.sleep(1.1)  # a recomputed expires_at would now differ from the first request's
    again = checkout_post(client, HTTP_IDEMPOTENCY_KEY="crash-after-stripe-0123456789abcdef")
    assert again.status_code == 201, again.content
    assert again.json()["checkout_session_id"] == first["checkout_session_id"]
    assert len(sessions_on_stripe(sandbox)) == 1


def test_merged_lines_over_the_quantity_limit_are_refused_with_422(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    body = checkout_body(lines=[{"sku": "TEE-M", "quantity": 60}, {"sku": "TEE-M", "quantity": 60}])
    response = checkout_post(client, body)
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")
    assert not Order.objects.exists()


def test_a_checkout_whose_stripe_call_fails_after_a_retry_got_the_session_answers_with_it(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    """Two requests with one Idempotency-Key: the first got the session, the second's own
    Stripe call failed. The second must answer with the session, not cancel the order."""
    first = checkout_post(client, HTTP_IDEMPOTENCY_KEY="race-1-0123456789abcdef")
    assert first.status_code == 201
    order = Order.objects.get()
    # The second request read the order before the first saved its session...
    from djangomart.payments.checkout import _session_ensure

    stale = Order.objects.get(pk=order.pk)
    stale.stripe_checkout_session_id = None
    stale.checkout_url = ""
    sandbox.configure(api_error_rate=1.0)  # ...and its own Stripe call fails.
    result = _session_ensure(stale)
    order.refresh_from_db()
    assert result.checkout_session_id == first.json()["checkout_session_id"]
    assert order.status == "pending"
    assert stock("TEE-M") == 8


# -- Idempotency-Key: scope, length, lifetime -----------------------------------------


def logged_in_client(username: str) -> Client:
    client = Client()
    client.force_login(User.objects.create_user(username, f"{username}@example.com", "pw-x"))
    return client


def test_the_same_idempotency_key_from_two_customers_makes_two_orders(
    goods: None, sandbox: SandboxServer
) -> None:
    key = "shared-key-0123456789abcdef"
    ada = checkout_post(logged_in_client("ada"), HTTP_IDEMPOTENCY_KEY=key)
    bob = checkout_post(logged_in_client("bob"), HTTP_IDEMPOTENCY_KEY=key)
    assert (ada.status_code, bob.status_code) == (201, 201), (ada.content, bob.content)
    assert ada.json()["order"]["id"] != bob.json()["order"]["id"]
    assert Order.objects.count() == 2
    assert stock("TEE-M") == 10 - 4


def test_a_customers_idempotency_key_does_not_reach_a_guests_order(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    key = "shared-key-0123456789abcdef"
    guest = checkout_post(client, HTTP_IDEMPOTENCY_KEY=key).json()
    ada = checkout_post(logged_in_client("ada"), HTTP_IDEMPOTENCY_KEY=key).json()
    assert guest["order"]["id"] != ada["order"]["id"]
    assert ada["access_token"] != guest["access_token"]


def test_a_customer_retrying_with_their_key_gets_their_order(
    goods: None, sandbox: SandboxServer
) -> None:
    ada = logged_in_client("ada")
    first = checkout_post(ada, HTTP_IDEMPOTENCY_KEY="short-key")
    again = checkout_post(ada, HTTP_IDEMPOTENCY_KEY="short-key")
    assert (first.status_code, again.status_code) == (201, 201), again.content
    assert first.json() == again.json()
    assert Order.objects.count() == 1


@pytest.mark.parametrize("key", ["short", "fifteen-chars-x"])
def test_a_guest_idempotency_key_shorter_than_16_characters_is_refused_with_422(
    goods: None, sandbox: SandboxServer, client: Client, key: str
) -> None:
    response = checkout_post(client, HTTP_IDEMPOTENCY_KEY=key)
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")
    assert [d["location"] for d in response.json()["details"]] == ["header.Idempotency-Key"]
    assert "16" in response.json()["message"]
    assert not Order.objects.exists()
    assert stock("TEE-M") == 10


def test_a_guest_idempotency_key_of_16_characters_is_accepted(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    assert checkout_post(client, HTTP_IDEMPOTENCY_KEY="x" * 16).status_code == 201


def test_the_idempotency_key_is_not_stored_in_clear(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    key = "a-secret-key-0123456789abcdef"
    checkout_post(client, HTTP_IDEMPOTENCY_KEY=key)
    assert key not in (Order.objects.get().idempotency_key or "")


def test_an_idempotency_key_older_than_24_hours_starts_a_new_order(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    key = "daily-key-0123456789abcdef"
    first = checkout_post(client, HTTP_IDEMPOTENCY_KEY=key).json()
    Order.objects.update(created_at=timezone.now() - timedelta(hours=24, seconds=1))
    again = checkout_post(client, HTTP_IDEMPOTENCY_KEY=key)
    assert again.status_code == 201, again.content
    assert again.json()["order"]["id"] != first["order"]["id"]
    assert Order.objects.count() == 2
    # ... and the new order is what the key finds from now on.
    third = checkout_post(client, HTTP_IDEMPOTENCY_KEY=key).json()
    assert third["order"]["id"] == again.json()["order"]["id"]


def test_an_idempotency_key_younger_than_24_hours_still_finds_its_order(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    key = "daily-key-0123456789abcdef"
    first = checkout_post(client, HTTP_IDEMPOTENCY_KEY=key).json()
    Order.objects.update(created_at=timezone.now() - timedelta(hours=23, minutes=59))
    again = checkout_post(client, HTTP_IDEMPOTENCY_KEY=key).json()
    assert again["order"]["id"] == first["order"]["id"]
