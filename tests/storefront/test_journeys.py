"""A whole customer journey through the API alone, as a frontend makes it, twice: once
as a browser client (session cookie + CSRF), once as an app (X-Session-Token). Browse,
fill a cart as a guest, sign up, verify the email from the test mailbox, log in sending
the cart token (the cart merges), add an address, check out from the cart, pay on the
sandbox, and see the order paid in the history, with its address."""

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from djangomart.catalog.demo import demo_catalog_seed
from tests.accounts.helpers import PASSWORD, browser_csrf, verification_key
from tests.payments.conftest import WEBHOOK_SECRET, run_jobs, sandbox, stripe_settings
from tests.stripe_sandbox.harness import SandboxServer

__all__ = ["sandbox", "stripe_settings"]

pytestmark = pytest.mark.django_db(transaction=True)

GOOD_CARD = "4242424242424242"
ADDRESS = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
    "phone": "+44 20 7946 0000",
}


@pytest.fixture
def shop(sandbox: SandboxServer, live_server: Any) -> SandboxServer:
    demo_catalog_seed()
    sandbox.add_endpoint(f"{live_server.url}/webhooks/stripe", WEBHOOK_SECRET)
    return sandbox


class Frontend:
    """The calls a frontend makes, with the credentials its kind of client sends."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.client = Client(enforce_csrf_checks=True)
        self.headers: dict[str, str] = {}
        if kind == "browser":
            self.headers["HTTP_X_CSRFTOKEN"] = browser_csrf(self.client)

    @property
    def allauth(self) -> str:
        return f"/_allauth/{self.kind}/v1"

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        send: Callable[..., Any] = getattr(self.client, method)
        extra = {**self.headers, **headers}
        if body is None:
            return send(path, **extra)
        return send(path, body, content_type="application/json", **extra)

    def logged_in(self, answer: Any) -> None:
        """Keeps what allauth's answer says the client holds from now on."""
        assert answer.status_code == 200, answer.content
        assert answer.json()["meta"]["is_authenticated"] is True
        if self.kind == "app":
            self.headers["HTTP_X_SESSION_TOKEN"] = answer.json()["meta"]["session_token"]
        else:
            self.headers["HTTP_X_CSRFTOKEN"] = browser_csrf(self.client)  # rotated at login


@pytest.mark.parametrize("kind", ["browser", "app"])
def test_a_customer_journey_through_the_api_alone(shop: SandboxServer, kind: str) -> None:
    front = Frontend(kind)
    email = f"{kind}.buyer@example.com"

    # Browse.
    products = front.call("get", "/api/v1/products").json()["items"]
    variant = next(v for p in products for v in p["variants"] if v["available"] >= 3)
    sku, price = variant["sku"], variant["price"]

    # A cart as a guest.
    cart = front.call("post", "/api/v1/carts", {})
    assert cart.status_code == 201, cart.content
    cart_id, cart_token = cart.json()["id"], cart.json()["token"]
    assert cart_token
    added = front.call(
        "post", f"/api/v1/carts/{cart_id}/lines", {"sku": sku, "quantity": 2},
        HTTP_X_CART_TOKEN=cart_token,
    )  # fmt: skip
    assert added.status_code in (200, 201), added.content

    # Sign up; the email must be verified before the account can log in.
    credentials = {"email": email, "password": PASSWORD}
    signup = front.call("post", f"{front.allauth}/auth/signup", credentials)
    assert signup.status_code == 401
    pending = signup.json()["meta"].get("session_token")
    verify_headers = {"HTTP_X_SESSION_TOKEN": pending} if kind == "app" else {}
    verified = front.call(
        "post", f"{front.allauth}/auth/email/verify", {"key": verification_key(email)},
        **verify_headers,
    )  # fmt: skip
    assert verified.status_code == 200, verified.content
    # Verifying logged the new customer in; the journey logs in again, as a customer who
    # verified on another device does, sending the guest cart's token.
    if kind == "app":
        logout = front.call("delete", f"{front.allauth}/auth/session", HTTP_X_SESSION_TOKEN=pending)
    else:
        front.headers["HTTP_X_CSRFTOKEN"] = browser_csrf(front.client)  # rotated at login
        logout = front.call("delete", f"{front.allauth}/auth/session")
        front.headers["HTTP_X_CSRFTOKEN"] = browser_csrf(front.client)
    assert logout.status_code in (401, 410), logout.content  # allauth: logged out

    # Log in with the guest cart's token: the cart merges into the customer's.
    login = front.call(
        "post", f"{front.allauth}/auth/login", credentials, HTTP_X_CART_TOKEN=cart_token
    )
    front.logged_in(login)
    mine = front.call("get", "/api/v1/me/cart")
    assert mine.status_code == 200, mine.content
    assert [(ln["sku"], ln["quantity"]) for ln in mine.json()["lines"]] == [(sku, 2)]
    assert mine.json()["subtotal"] == 2 * price

    # An address, then the cart's checkout.
    address = front.call("post", "/api/v1/me/addresses", ADDRESS)
    assert address.status_code == 201, address.content
    checkout = front.call(
        "post", f"/api/v1/carts/{mine.json()['id']}/checkout",
        {"address_id": address.json()["id"]}, HTTP_IDEMPOTENCY_KEY=f"journey-{kind}",
    )  # fmt: skip
    assert checkout.status_code == 201, checkout.content
    body = checkout.json()
    assert body["order"]["total"] == 2 * price

    # Pay on the sandbox's hosted page; Stripe's webhooks reach the shop.
    shop.control(f"checkout/sessions/{body['checkout_session_id']}/pay", {"card": GOOD_CARD})
    shop.wait_idle()
    run_jobs()

    history = front.call("get", "/api/v1/me/orders")
    assert history.status_code == 200, history.content
    (order,) = history.json()["items"]
    assert (order["id"], order["status"], order["payment_status"]) == (
        body["order"]["id"], "paid", "paid",
    )  # fmt: skip
    detail = front.call("get", f"/api/v1/me/orders/{order['id']}").json()
    assert detail["amount_paid"] == 2 * price
    assert detail["shipping_address"]["city"] == "London"
    assert [(ln["sku"], ln["quantity"]) for ln in detail["lines"]] == [(sku, 2)]
