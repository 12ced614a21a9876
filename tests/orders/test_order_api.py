"""GET /api/v1/orders/{id} and POST /api/v1/orders/{id}/sync: the order for its guest
(access token) or its logged-in owner, and the success page's instant answer."""

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from djangomart.catalog.models import Variant
from djangomart.orders.models import Order, OrderEvent
from djangomart.payments.models import StripeEvent
from tests.orders.conftest import checkout_post
from tests.payments.conftest import post_event, run_jobs
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = pytest.mark.django_db

ORDER_FIELDS = {
    "id",
    "status",
    "payment_status",
    "currency",
    "total",
    "amount_paid",
    "amount_refunded",
    "disputed",
    "dispute_lost",
    "amount_lost_to_disputes",
    "needs_attention",
    "fulfillment_status",
    "lines",
    "refunds",
    "disputes",
    "dispute",
    "shipping_address",
}


@pytest.fixture
def placed(goods: None, sandbox: SandboxServer, client: Client) -> dict[str, Any]:
    """A guest's order with its Checkout Session (no webhook endpoint is registered)."""
    response = checkout_post(client)
    assert response.status_code == 201, response.content
    return response.json()  # type: ignore[no-any-return]


def order_get(client: Client, order_id: str, token: str | None = None) -> Any:
    headers = {} if token is None else {"X-Order-Token": token}
    return client.get(f"/api/v1/orders/{order_id}", headers=headers)


def order_sync(client: Client, order_id: str, token: str | None = None) -> Any:
    headers = {} if token is None else {"X-Order-Token": token}
    return client.post(f"/api/v1/orders/{order_id}/sync", headers=headers)


def pay(sandbox: SandboxServer, placed: dict[str, Any], **how: Any) -> Any:
    return sandbox.control(
        f"checkout/sessions/{placed['checkout_session_id']}/pay",
        how or {"card": "4242424242424242"},
    )


def user(name: str) -> User:
    return User.objects.create_user(name, f"{name}@example.com")  # force_login needs no password


# -- Reading an order -----------------------------------------------------------------


def test_the_access_token_shows_the_order_with_its_status_money_and_lines(
    placed: dict[str, Any], client: Client
) -> None:
    response = order_get(client, placed["order"]["id"], placed["access_token"])
    assert response.status_code == 200
    body = response.json()
    assert set(body) == ORDER_FIELDS
    assert body == {
        "id": placed["order"]["id"],
        "status": "pending",
        "payment_status": "unpaid",
        "currency": "usd",
        "total": 4000,
        "amount_paid": 0,
        "amount_refunded": 0,
        "disputed": False,
        "dispute_lost": False,
        "amount_lost_to_disputes": 0,
        "needs_attention": False,
        "fulfillment_status": "unfulfilled",
        "refunds": [],
        "disputes": [],
        "dispute": None,
        "shipping_address": None,
        "lines": [
            {
                "sku": "TEE-M",
                "name": "Classic Tee",
                "unit_price": 2000,
                "quantity": 2,
                "line_total": 4000,
                "quantity_shipped": 0,
            }
        ],
    }


@pytest.mark.parametrize(
    "token", [None, "", "wrong-token", "x" * 43], ids=["none", "empty", "wrong", "same-length"]
)
def test_without_the_right_token_the_order_is_404_not_found(
    placed: dict[str, Any], token: str | None
) -> None:
    response = order_get(Client(), placed["order"]["id"], token)
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_another_orders_token_does_not_open_this_order(
    goods: None, sandbox: SandboxServer, placed: dict[str, Any], client: Client
) -> None:
    other = checkout_post(client).json()
    response = order_get(client, placed["order"]["id"], other["access_token"])
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_an_unknown_order_answers_exactly_like_a_wrong_token(
    placed: dict[str, Any], client: Client
) -> None:
    unknown = order_get(client, str(uuid.uuid4()), placed["access_token"])
    wrong = order_get(client, placed["order"]["id"], "wrong-token")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    assert unknown.json() == wrong.json()


def test_the_logged_in_owner_sees_the_order_without_a_token(
    goods: None, sandbox: SandboxServer
) -> None:
    owner = user("owner")
    client = Client()
    client.force_login(owner)
    placed = checkout_post(client).json()
    assert Order.objects.get(pk=placed["order"]["id"]).customer == owner
    response = order_get(client, placed["order"]["id"])
    assert (response.status_code, response.json()["id"]) == (200, placed["order"]["id"])


def test_another_logged_in_user_gets_404_for_the_order(goods: None, sandbox: SandboxServer) -> None:
    owner_client, other_client = Client(), Client()
    owner_client.force_login(user("owner"))
    other_client.force_login(user("someone-else"))
    placed = checkout_post(owner_client).json()
    response = order_get(other_client, placed["order"]["id"])
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_a_logged_in_user_does_not_see_a_guest_order_without_its_token(
    placed: dict[str, Any],
) -> None:
    client = Client()
    client.force_login(user("curious"))
    response = order_get(client, placed["order"]["id"])
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_many_rapid_reads_of_an_order_are_never_throttled(
    placed: dict[str, Any], client: Client
) -> None:
    statuses = {
        order_get(client, placed["order"]["id"], placed["access_token"]).status_code
        for _ in range(30)
    }
    assert statuses == {200}


# -- Sync: the success page asks Stripe now --------------------------------------------


def test_sync_after_paying_makes_the_order_paid_without_any_webhook(
    placed: dict[str, Any], sandbox: SandboxServer, client: Client
) -> None:
    pay(sandbox, placed)
    response = order_sync(client, placed["order"]["id"], placed["access_token"])
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["payment_status"], body["amount_paid"]) == ("paid", "paid", 4000)
    assert Order.objects.get().status == "paid"
    assert not StripeEvent.objects.exists()


def test_sync_records_the_transition_to_paid_on_the_timeline_like_the_webhook_does(
    placed: dict[str, Any], sandbox: SandboxServer, client: Client
) -> None:
    attempt = pay(sandbox, placed)
    order_sync(client, placed["order"]["id"], placed["access_token"])
    order = Order.objects.get()
    transitions = order.events.filter(kind=OrderEvent.Kind.TRANSITION)
    assert list(transitions.values_list("from_status", "to_status")) == [("pending", "paid")]
    assert order.stripe_payment_intent_id == attempt["payment_intent"]["id"]
    assert list(order.payments.values_list("stripe_payment_intent_id", "amount_received")) == [
        (attempt["payment_intent"]["id"], 4000)
    ]


@pytest.mark.django_db(transaction=True)
def test_the_webhook_arriving_after_a_sync_changes_nothing_more(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    placed = checkout_post(client).json()
    pay(sandbox, placed)
    assert order_sync(client, placed["order"]["id"], placed["access_token"]).status_code == 200
    stripe = sandbox.client()
    for event_type in ("checkout.session.completed", "payment_intent.succeeded"):
        event = stripe.v1.events.list({"type": event_type}).data[0]
        assert post_event(client, json.dumps(event.to_dict())).status_code == 200
    run_jobs()
    order = Order.objects.get()
    assert (order.status, order.amount_paid, order.needs_attention) == ("paid", 4000, False)
    assert order.events.filter(kind=OrderEvent.Kind.TRANSITION).count() == 1
    assert set(StripeEvent.objects.values_list("status", flat=True)) == {"processed"}


def test_sync_of_an_unpaid_session_leaves_the_order_pending(
    placed: dict[str, Any], client: Client
) -> None:
    response = order_sync(client, placed["order"]["id"], placed["access_token"])
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["payment_status"]) == ("pending", "unpaid")
    assert not OrderEvent.objects.filter(kind=OrderEvent.Kind.TRANSITION).exists()


def test_sync_after_a_delayed_payment_shows_the_payment_processing(
    placed: dict[str, Any], sandbox: SandboxServer, client: Client
) -> None:
    pay(sandbox, placed, method="delayed")
    body = order_sync(client, placed["order"]["id"], placed["access_token"]).json()
    assert (body["status"], body["payment_status"]) == ("pending", "processing")


def test_sync_after_the_session_expired_makes_the_order_expired_and_gives_its_stock_back(
    placed: dict[str, Any], sandbox: SandboxServer, client: Client
) -> None:
    sandbox.control("clock/advance", {"seconds": 90000})
    body = order_sync(client, placed["order"]["id"], placed["access_token"]).json()
    assert body["status"] == "expired"
    assert Variant.objects.get(sku="TEE-M").available == 10


def test_a_second_sync_within_a_second_answers_without_asking_stripe(
    placed: dict[str, Any], client: Client, sandbox: SandboxServer
) -> None:
    first = order_sync(client, placed["order"]["id"], placed["access_token"])
    sandbox.configure(api_error_rate=1.0)  # any call to Stripe now would be a 502
    second = order_sync(client, placed["order"]["id"], placed["access_token"])
    assert first.status_code == 200
    assert second.status_code == 200
    assert second.json() == first.json()


def test_sync_asks_stripe_again_once_the_interval_has_passed(
    placed: dict[str, Any], client: Client, sandbox: SandboxServer
) -> None:
    assert order_sync(client, placed["order"]["id"], placed["access_token"]).status_code == 200
    Order.objects.update(last_synced_at=timezone.now() - timedelta(seconds=1, milliseconds=100))
    sandbox.configure(api_error_rate=1.0)
    response = order_sync(client, placed["order"]["id"], placed["access_token"])
    assert (response.status_code, response.json()["code"]) == (502, "payment_provider_unavailable")


@pytest.mark.parametrize("token", [None, "wrong-token"], ids=["none", "wrong"])
def test_sync_without_the_right_token_is_404_and_uses_no_rate_limit(
    placed: dict[str, Any], sandbox: SandboxServer, token: str | None
) -> None:
    pay(sandbox, placed)
    response = order_sync(Client(), placed["order"]["id"], token)
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    order = Order.objects.get()
    assert (order.status, order.last_synced_at) == ("pending", None)


def test_the_logged_in_owner_can_sync_without_a_token(goods: None, sandbox: SandboxServer) -> None:
    client = Client()
    client.force_login(user("owner"))
    placed = checkout_post(client).json()
    pay(sandbox, placed)
    response = order_sync(client, placed["order"]["id"])
    assert (response.status_code, response.json()["status"]) == (200, "paid")


def test_syncing_an_order_that_is_already_up_to_date_writes_nothing(
    placed: dict[str, Any], client: Client, sandbox: SandboxServer
) -> None:
    pay(sandbox, placed, card="4242424242424242")
    order_id = placed["order"]["id"]
    assert order_sync(client, order_id, placed["access_token"]).json()["status"] == "paid"
    entries = OrderEvent.objects.filter(order_id=order_id).count()
    for _ in range(3):
        Order.objects.update(last_synced_at=None)
        assert order_sync(client, order_id, placed["access_token"]).json()["status"] == "paid"
    assert OrderEvent.objects.filter(order_id=order_id).count() == entries
