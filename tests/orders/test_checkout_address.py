"""The address an order ships to (docs/addresses.md): checkout takes a saved address
(`address_id`) or an inline one (`address`), stores a snapshot on the order that later
edits never change, and shows it in the order API and the admin."""

import hashlib
import json
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from djangomart.accounts.addresses import (
    AddressIn,
    AddressNotFound,
    InvalidAddress,
    address_snapshot_for_checkout,
)
from djangomart.accounts.customers import CustomerRequired
from djangomart.catalog.models import Variant
from djangomart.orders.models import Order
from djangomart.payments.checkout import LineWanted, _fingerprint
from tests.accounts.helpers import logged_in
from tests.orders.conftest import checkout_body, checkout_post
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = pytest.mark.django_db

ADDRESSES = "/api/v1/me/addresses"
SNAPSHOT_KEYS = {"name", "line1", "line2", "city", "postal_code", "region", "country", "phone"}


def address_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Ada Lovelace",
        "line1": "Unter den Linden 1",
        "line2": "",
        "city": "Berlin",
        "postal_code": "10117",
        "region": "",
        "country": "DE",
        "phone": "+49 30 1234567",
    }
    body.update(overrides)
    return body


def address_save(client: Client, **overrides: Any) -> dict[str, Any]:
    response = client.post(ADDRESSES, address_body(**overrides), content_type="application/json")
    assert response.status_code == 201, response.content
    return dict(response.json())


def order_read(client: Client, order_id: str, token: str | None = None) -> dict[str, Any]:
    headers: dict[str, Any] = {"HTTP_X_ORDER_TOKEN": token} if token else {}
    response = client.get(f"/api/v1/orders/{order_id}", **headers)
    assert response.status_code == 200, response.content
    return dict(response.json())


def stock(sku: str = "TEE-M") -> int:
    return Variant.objects.get(sku=sku).available


@pytest.fixture
def ada() -> tuple[Client, User]:
    return logged_in("ada")


# -- A saved address ------------------------------------------------------------------


def test_checkout_with_a_saved_address_stores_its_snapshot_and_the_order_api_shows_it(
    goods: None, sandbox: SandboxServer, ada: tuple[Client, User]
) -> None:
    client, user = ada
    saved = address_save(client)
    response = checkout_post(client, checkout_body(address_id=saved["id"]))
    assert response.status_code == 201, response.content
    expected = {k: saved[k] for k in SNAPSHOT_KEYS}
    assert response.json()["order"]["shipping_address"] == expected
    order = Order.objects.get()
    assert (order.customer, order.shipping_address) == (user, expected)
    assert order_read(client, str(order.id))["shipping_address"] == expected


def test_editing_or_deleting_the_saved_address_never_changes_the_orders_snapshot(
    goods: None, sandbox: SandboxServer, ada: tuple[Client, User]
) -> None:
    client, _ = ada
    saved = address_save(client)
    placed = checkout_post(client, checkout_body(address_id=saved["id"])).json()
    snapshot = placed["order"]["shipping_address"]
    edit = client.patch(
        f"{ADDRESSES}/{saved['id']}",
        {"line1": "Somewhere Else 9", "city": "Hamburg", "country": "fr"},
        content_type="application/json",
    )
    assert edit.status_code == 200, edit.content
    assert order_read(client, placed["order"]["id"])["shipping_address"] == snapshot
    assert client.delete(f"{ADDRESSES}/{saved['id']}").status_code == 204
    assert order_read(client, placed["order"]["id"])["shipping_address"] == snapshot
    assert Order.objects.get().shipping_address == snapshot


def test_someone_elses_address_id_at_checkout_is_404_and_makes_no_order(
    goods: None, sandbox: SandboxServer, ada: tuple[Client, User]
) -> None:
    owner, _ = ada
    theirs = address_save(owner)
    intruder, _ = logged_in("intruder")
    response = checkout_post(intruder, checkout_body(address_id=theirs["id"]))
    assert (response.status_code, response.json()["code"]) == (404, "address_not_found")
    assert not Order.objects.exists()
    assert stock() == 10


def test_an_unknown_address_id_at_checkout_is_the_same_404(
    goods: None, sandbox: SandboxServer, ada: tuple[Client, User]
) -> None:
    response = checkout_post(ada[0], checkout_body(address_id=str(uuid.uuid4())))
    assert (response.status_code, response.json()["code"]) == (404, "address_not_found")
    assert not Order.objects.exists()


def test_a_guest_sending_an_address_id_is_401_and_makes_no_order(
    goods: None, sandbox: SandboxServer, ada: tuple[Client, User], client: Client
) -> None:
    theirs = address_save(ada[0])
    response = checkout_post(client, checkout_body(address_id=theirs["id"]))
    assert (response.status_code, response.json()["code"]) == (401, "not_authenticated")
    assert not Order.objects.exists()
    assert stock() == 10


# -- An inline address ----------------------------------------------------------------


def test_a_guest_checkout_with_an_inline_address_stores_it_normalised(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    inline = address_body(name="  Grace Hopper ", country="us", region="NY", line2=" Apt 4 ")
    response = checkout_post(client, checkout_body(address=inline))
    assert response.status_code == 201, response.content
    body = response.json()
    expected = {**address_body(), "name": "Grace Hopper", "country": "US", "region": "NY"}
    expected["line2"] = "Apt 4"
    assert body["order"]["shipping_address"] == expected
    assert Order.objects.get().shipping_address == expected
    assert order_read(client, body["order"]["id"], body["access_token"])["shipping_address"] == (
        expected
    )


def test_optional_fields_of_an_inline_address_may_be_left_out(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    inline = {"name": "Ada", "line1": "1 Main St", "city": "Springfield", "country": "US"}
    response = checkout_post(client, checkout_body(address=inline))
    assert response.status_code == 201, response.content
    assert response.json()["order"]["shipping_address"] == {
        **inline,
        "line2": "",
        "postal_code": "",
        "region": "",
        "phone": "",
    }


@pytest.mark.parametrize(
    ("change", "location"),
    [
        ({"country": "ZZ"}, "address.country"),
        ({"name": ""}, "address.name"),
        ({"city": "x" * 101}, "address.city"),
        ({"line1": "a\x00b"}, "address.line1"),
        ({"phone": "call me"}, "address.phone"),
    ],
)
def test_an_invalid_inline_address_is_a_422_naming_it_and_makes_no_order(
    goods: None, sandbox: SandboxServer, client: Client, change: dict[str, Any], location: str
) -> None:
    response = checkout_post(client, checkout_body(address=address_body(**change)))
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")
    assert [d["location"] for d in response.json()["details"]] == [location]
    assert not Order.objects.exists()
    assert stock() == 10


def test_an_inline_address_missing_a_required_field_is_a_422(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    inline = address_body()
    del inline["country"]
    response = checkout_post(client, checkout_body(address=inline))
    assert response.status_code == 422
    assert [(d["location"], d["type"]) for d in response.json()["details"]] == [
        ("address.country", "missing")
    ]


def test_address_id_and_an_inline_address_together_are_a_422(
    goods: None, sandbox: SandboxServer, ada: tuple[Client, User]
) -> None:
    client, _ = ada
    saved = address_save(client)
    response = checkout_post(client, checkout_body(address_id=saved["id"], address=address_body()))
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")
    assert response.json()["details"][0]["location"] == "address_id"
    assert not Order.objects.exists()


def test_checkout_without_an_address_still_works_and_shows_null(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    response = checkout_post(client)
    assert response.status_code == 201, response.content
    assert response.json()["order"]["shipping_address"] is None
    assert Order.objects.get().shipping_address is None


# -- Idempotency ----------------------------------------------------------------------


def test_the_same_idempotency_key_with_another_address_is_idempotency_key_reused(
    goods: None, sandbox: SandboxServer, client: Client
) -> None:
    key = "address-key-0123456789abcdef"
    first = checkout_post(client, checkout_body(address=address_body()), HTTP_IDEMPOTENCY_KEY=key)
    assert first.status_code == 201, first.content
    again = checkout_post(client, checkout_body(address=address_body()), HTTP_IDEMPOTENCY_KEY=key)
    assert (again.status_code, again.json()) == (201, first.json())
    for other in [address_body(city="Hamburg"), None]:
        response = checkout_post(client, checkout_body(address=other), HTTP_IDEMPOTENCY_KEY=key)
        assert (response.status_code, response.json()["code"]) == (409, "idempotency_key_reused")
    assert Order.objects.count() == 1
    assert stock() == 8


def test_the_same_key_with_another_saved_address_is_idempotency_key_reused(
    goods: None, sandbox: SandboxServer, ada: tuple[Client, User]
) -> None:
    client, _ = ada
    home = address_save(client)
    office = address_save(client, line1="Office Str. 5")
    key = "customer-key"
    first = checkout_post(client, checkout_body(address_id=home["id"]), HTTP_IDEMPOTENCY_KEY=key)
    assert first.status_code == 201, first.content
    other = checkout_post(client, checkout_body(address_id=office["id"]), HTTP_IDEMPOTENCY_KEY=key)
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_key_reused")
    assert Order.objects.count() == 1


def test_a_request_without_an_address_keeps_the_fingerprint_it_had_before_addresses() -> None:
    # A client retrying across the deploy that added addresses is still the same request.
    lines = [LineWanted("TEE-M", 2)]
    args = ("ada@example.com", lines, "https://shop.test/ok", "https://shop.test/no", None)
    before = hashlib.sha256(
        json.dumps([args[0], [("TEE-M", 2)], args[2], args[3], args[4]]).encode()
    ).hexdigest()
    assert _fingerprint(*args) == _fingerprint(*args, None) == before
    assert _fingerprint(*args, {"name": "A"}) != before


# -- The service, as the cart checkout calls it ---------------------------------------


def test_the_snapshot_service_takes_a_dict_an_address_in_or_a_saved_id(
    ada: tuple[Client, User],
) -> None:
    client, user = ada
    saved = address_save(client)
    expected = {k: saved[k] for k in SNAPSHOT_KEYS}
    raw = {**address_body(), "country": "de"}
    assert address_snapshot_for_checkout(customer=None, address_id=None, address=raw) == expected
    schema = AddressIn(**address_body())
    assert address_snapshot_for_checkout(customer=None, address_id=None, address=schema) == (
        expected
    )
    by_id = address_snapshot_for_checkout(
        customer=user, address_id=uuid.UUID(saved["id"]), address=None
    )
    assert by_id == expected
    assert address_snapshot_for_checkout(customer=user, address_id=None, address=None) is None
    with pytest.raises(CustomerRequired):
        address_snapshot_for_checkout(
            customer=None, address_id=uuid.UUID(saved["id"]), address=None
        )
    other = User.objects.create_user("other", "other@example.com")
    with pytest.raises(AddressNotFound):
        address_snapshot_for_checkout(
            customer=other, address_id=uuid.UUID(saved["id"]), address=None
        )
    with pytest.raises(InvalidAddress):
        address_snapshot_for_checkout(customer=user, address_id=uuid.UUID(saved["id"]), address=raw)
    with pytest.raises(InvalidAddress) as bad:
        address_snapshot_for_checkout(customer=None, address_id=None, address={"name": "x"})
    locations = [d["location"] for d in bad.value.extra["details"]]
    assert locations == ["address.line1", "address.city", "address.country"]


# -- The admin ------------------------------------------------------------------------


def test_the_order_admin_shows_the_snapshot_read_only(
    goods: None, sandbox: SandboxServer, client: Client, staff_client: Client
) -> None:
    inline = address_body(name="Grace <b>Hopper</b>", line2="Apt 4", country="GB")
    assert checkout_post(client, checkout_body(address=inline)).status_code == 201
    order = Order.objects.get()
    page = staff_client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    shown = (
        "<div>Grace &lt;b&gt;Hopper&lt;/b&gt;</div><div>Unter den Linden 1</div><div>Apt 4</div>"
        "<div>10117 Berlin</div><div>United Kingdom (GB)</div><div>Phone: +49 30 1234567</div>"
    )
    assert shown in page
    assert 'name="shipping_address"' not in page
