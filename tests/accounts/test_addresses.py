"""The address book, `/api/v1/me/addresses` (docs/addresses.md): list, create, read,
update, delete, mark default; validated; a customer's addresses are theirs alone."""

import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from djangomart.accounts.addresses import MAX_ADDRESSES_PER_CUSTOMER, AddressIn, address_create
from djangomart.accounts.countries import COUNTRIES
from djangomart.accounts.models import Address
from tests.accounts.helpers import app_login, customer_create, logged_in

pytestmark = pytest.mark.django_db

URL = "/api/v1/me/addresses"


def address_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Ada Lovelace",
        "line1": "Unter den Linden 1",
        "line2": "3rd floor",
        "city": "Berlin",
        "postal_code": "10117",
        "region": "Berlin",
        "country": "DE",
        "phone": "+49 30 1234567",
    }
    body.update(overrides)
    return body


def post(client: Client, body: dict[str, Any], url: str = URL, **headers: Any) -> Any:
    return client.post(url, body, content_type="application/json", **headers)


def patch(client: Client, address_id: Any, body: dict[str, Any], **headers: Any) -> Any:
    return client.patch(f"{URL}/{address_id}", body, content_type="application/json", **headers)


def saved(client: Client, **overrides: Any) -> dict[str, Any]:
    response = post(client, address_body(**overrides))
    assert response.status_code == 201, response.content
    return dict(response.json())


def rows(user: User) -> list[tuple[Any, ...]]:
    """Everything about the user's addresses, to prove that nothing changed."""
    return list(
        Address.objects.filter(customer=user)
        .order_by("pk")
        .values_list("pk", "name", "line1", "city", "country", "is_default", "updated_at")
    )


@pytest.fixture
def ada() -> tuple[Client, User]:
    return logged_in("ada")


@pytest.fixture
def ada_client(ada: tuple[Client, User]) -> Client:
    return ada[0]


# -- The happy paths ------------------------------------------------------------------


def test_a_created_address_is_answered_201_with_its_fields_and_a_uuid(ada_client: Client) -> None:
    response = post(ada_client, address_body())
    assert response.status_code == 201, response.content
    body = response.json()
    assert uuid.UUID(body["id"]).version == 4
    assert {k: body[k] for k in address_body()} == address_body()
    assert body["is_default"] is True  # the first address is the default
    assert set(body) == {*address_body(), "id", "is_default", "created_at", "updated_at"}


def test_the_list_shows_the_default_first_then_the_newest(ada_client: Client) -> None:
    first = saved(ada_client, name="First")
    second = saved(ada_client, name="Second")
    third = saved(ada_client, name="Third")
    listed = ada_client.get(URL).json()
    assert [a["id"] for a in listed] == [first["id"], third["id"], second["id"]]
    assert [a["is_default"] for a in listed] == [True, False, False]


def test_the_list_reads_the_addresses_in_one_query_whatever_their_number(
    ada: tuple[Client, User],
) -> None:
    client, user = ada
    for n in range(5):
        address_create(customer=user, data=AddressIn(**address_body(name=f"N{n}")))
    with CaptureQueriesContext(connection) as queries:
        response = client.get(URL)
    assert response.status_code == 200
    assert len(response.json()) == 5
    address_queries = [q for q in queries.captured_queries if "accounts_address" in q["sql"]]
    assert len(address_queries) == 1


def test_an_address_is_read_by_its_id(ada_client: Client) -> None:
    created = saved(ada_client)
    response = ada_client.get(f"{URL}/{created['id']}")
    assert (response.status_code, response.json()) == (200, created)


def test_patch_changes_only_the_fields_sent(ada_client: Client) -> None:
    created = saved(ada_client)
    response = patch(ada_client, created["id"], {"city": "Potsdam", "line2": ""})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["city"], body["line2"]) == ("Potsdam", "")
    unchanged = {k: v for k, v in created.items() if k not in {"city", "line2", "updated_at"}}
    assert {k: body[k] for k in unchanged} == unchanged
    assert ada_client.get(f"{URL}/{created['id']}").json() == body


def test_an_empty_patch_changes_nothing(ada_client: Client) -> None:
    created = saved(ada_client)
    response = patch(ada_client, created["id"], {})
    assert response.status_code == 200
    assert {k: v for k, v in response.json().items() if k != "updated_at"} == {
        k: v for k, v in created.items() if k != "updated_at"
    }


def test_delete_answers_204_and_the_address_is_gone(ada_client: Client) -> None:
    created = saved(ada_client)
    response = ada_client.delete(f"{URL}/{created['id']}")
    assert (response.status_code, response.content) == (204, b"")
    assert ada_client.get(f"{URL}/{created['id']}").status_code == 404
    assert not Address.objects.exists()


def test_marking_an_address_default_unmarks_the_previous_one(ada_client: Client) -> None:
    first = saved(ada_client)
    second = saved(ada_client)
    response = post(ada_client, {}, url=f"{URL}/{second['id']}/default")
    assert response.status_code == 200, response.content
    assert (response.json()["id"], response.json()["is_default"]) == (second["id"], True)
    listed = ada_client.get(URL).json()
    assert [(a["id"], a["is_default"]) for a in listed] == [
        (second["id"], True),
        (first["id"], False),
    ]


def test_marking_the_default_again_keeps_it_the_default(ada_client: Client) -> None:
    first = saved(ada_client)
    response = post(ada_client, {}, url=f"{URL}/{first['id']}/default")
    assert (response.status_code, response.json()["is_default"]) == (200, True)
    assert Address.objects.filter(is_default=True).count() == 1


def test_an_address_created_with_is_default_takes_over_the_default(ada_client: Client) -> None:
    first = saved(ada_client)
    second = saved(ada_client, is_default=True)
    assert second["is_default"] is True
    assert ada_client.get(f"{URL}/{first['id']}").json()["is_default"] is False


def test_deleting_the_default_makes_the_newest_remaining_address_the_default(
    ada_client: Client,
) -> None:
    default = saved(ada_client, name="Default")
    older = saved(ada_client, name="Older")
    newer = saved(ada_client, name="Newer")
    assert ada_client.delete(f"{URL}/{default['id']}").status_code == 204
    listed = ada_client.get(URL).json()
    assert [(a["id"], a["is_default"]) for a in listed] == [
        (newer["id"], True),
        (older["id"], False),
    ]


def test_deleting_a_non_default_address_keeps_the_default(ada_client: Client) -> None:
    default = saved(ada_client)
    other = saved(ada_client)
    assert ada_client.delete(f"{URL}/{other['id']}").status_code == 204
    assert ada_client.get(f"{URL}/{default['id']}").json()["is_default"] is True


def test_deleting_the_last_address_leaves_no_default(ada_client: Client) -> None:
    only = saved(ada_client)
    assert ada_client.delete(f"{URL}/{only['id']}").status_code == 204
    assert ada_client.get(URL).json() == []
    assert saved(ada_client)["is_default"] is True  # the next first one is the default


def test_the_app_client_uses_its_session_token(db: None) -> None:
    customer_create("grace@example.com")
    client = Client()
    token = app_login(client, "grace@example.com")
    app = Client()  # no cookie: the token alone
    response = post(app, address_body(), HTTP_X_SESSION_TOKEN=token)
    assert response.status_code == 201, response.content
    listed = app.get(URL, HTTP_X_SESSION_TOKEN=token).json()
    assert [a["id"] for a in listed] == [response.json()["id"]]


def test_a_browser_client_needs_the_csrf_token_to_write(db: None) -> None:
    user = User.objects.create_user("csrf", "csrf@example.com")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = post(client, address_body())
    assert (response.status_code, response.json()["code"]) == (403, "csrf_failed")
    assert not Address.objects.exists()
    token = client.get("/api/v1/csrf").json()["csrf_token"]
    assert post(client, address_body(), HTTP_X_CSRFTOKEN=token).status_code == 201


# -- Bounds ---------------------------------------------------------------------------


def test_an_address_book_holds_at_most_the_limit_then_409(ada: tuple[Client, User]) -> None:
    client, user = ada
    for n in range(MAX_ADDRESSES_PER_CUSTOMER):
        address_create(customer=user, data=AddressIn(**address_body(name=f"N{n}")))
    response = post(client, address_body())
    assert (response.status_code, response.json()["code"]) == (409, "address_limit_reached")
    assert Address.objects.filter(customer=user).count() == MAX_ADDRESSES_PER_CUSTOMER


def test_the_database_refuses_a_second_default(ada: tuple[Client, User]) -> None:
    _, user = ada
    saved(ada[0])
    second = Address.objects.create(customer=user, **address_body(name="Second"))
    second.is_default = True
    with pytest.raises(IntegrityError), transaction.atomic():
        second.save()


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_addresses_make_exactly_one_default() -> None:
    user = User.objects.create_user("racer", "racer@example.com")
    barrier = threading.Barrier(4)

    def create(n: int) -> Address:
        try:
            barrier.wait()
            return address_create(customer=user, data=AddressIn(**address_body(name=f"R{n}")))
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(create, n) for n in range(4)]
    for future in futures:
        future.result()
    assert Address.objects.filter(customer=user).count() == 4
    assert Address.objects.filter(customer=user, is_default=True).count() == 1


# -- Validation -----------------------------------------------------------------------


def details(response: Any) -> list[tuple[str, str]]:
    assert response.status_code == 422, response.content
    assert response.json()["code"] == "validation_error"
    return [(d["location"], d["type"]) for d in response.json()["details"]]


@pytest.mark.parametrize("field", ["name", "line1", "city", "country"])
def test_a_required_field_missing_is_a_422_naming_it(ada_client: Client, field: str) -> None:
    body = address_body()
    del body[field]
    assert details(post(ada_client, body)) == [(field, "missing")]
    assert not Address.objects.exists()


@pytest.mark.parametrize("field", ["name", "line1", "city"])
def test_a_required_field_that_is_blank_is_refused(ada_client: Client, field: str) -> None:
    assert details(post(ada_client, address_body(**{field: "   "}))) == [(field, "blank")]


@pytest.mark.parametrize("country", ["ZZ", "XK", "UK", "EU", "DEU", "D", "", "1A", "ÄÖ"])
def test_a_country_that_is_not_an_iso_3166_alpha_2_code_is_refused(
    ada_client: Client, country: str
) -> None:
    (location, _kind), *_ = details(post(ada_client, address_body(country=country)))
    assert location == "country"


def test_the_country_is_stored_uppercase_and_strings_stripped(ada_client: Client) -> None:
    body = saved(
        ada_client, country=" gb ", name="  Ada  ", city=" London", postal_code="SW1A 1AA "
    )
    assert (body["country"], body["name"], body["city"], body["postal_code"]) == (
        "GB",
        "Ada",
        "London",
        "SW1A 1AA",
    )


@pytest.mark.parametrize(
    ("field", "limit"),
    [("name", 200), ("line1", 200), ("line2", 200), ("city", 100), ("postal_code", 20),
     ("region", 100), ("phone", 32)],
)  # fmt: skip
def test_a_field_longer_than_its_limit_is_refused(
    ada_client: Client, field: str, limit: int
) -> None:
    value = "1" * (limit + 1)
    assert details(post(ada_client, address_body(**{field: value}))) == [(field, "string_too_long")]


@pytest.mark.parametrize("field", ["name", "line1", "line2", "city", "postal_code", "region"])
def test_a_nul_character_is_refused(ada_client: Client, field: str) -> None:
    assert details(post(ada_client, address_body(**{field: "a\x00b"}))) == [
        (field, "nul_character")
    ]


@pytest.mark.parametrize("value", ["line\nbreak", "tab\there", "bell\x07", "c1\x85"])
def test_a_control_character_is_refused(ada_client: Client, value: str) -> None:
    assert details(post(ada_client, address_body(line1=value))) == [("line1", "control_character")]


@pytest.mark.parametrize(
    "phone", ["+49 30 1234567", "(030) 123-456", "0044 20 7946 0958", "123456", ""]
)
def test_plausible_phone_numbers_are_accepted(ada_client: Client, phone: str) -> None:
    assert saved(ada_client, phone=phone)["phone"] == phone


@pytest.mark.parametrize(
    "phone",
    ["12345", "1" * 21, "call me", "+49+30", "49 30 123456 ext 7", "١٢٣٤٥٦٧", "+49.30.123456"],
)
def test_an_implausible_phone_number_is_refused(ada_client: Client, phone: str) -> None:
    assert details(post(ada_client, address_body(phone=phone)))[0][0] == "phone"


def test_patch_validates_as_create_does(ada_client: Client) -> None:
    created = saved(ada_client)
    changes: list[tuple[dict[str, Any], tuple[str, str]]] = [
        ({"country": "ZZ"}, ("country", "country_code")),
        ({"name": ""}, ("name", "string_too_short")),
        ({"name": None}, ("name", "string_type")),
        ({"city": "x" * 101}, ("city", "string_too_long")),
        ({"line1": "a\x00"}, ("line1", "nul_character")),
    ]
    for change, expected in changes:
        assert details(patch(ada_client, created["id"], change)) == [expected], change
    assert ada_client.get(f"{URL}/{created['id']}").json() == created


def test_the_country_list_is_iso_3166_alpha_2_shaped() -> None:
    assert len(COUNTRIES) == 249
    assert all(re.fullmatch(r"[A-Z]{2}", code) and name for code, name in COUNTRIES.items())
    assert {"DE", "US", "GB", "FR", "JP", "BR", "ZA", "SS", "CW"} <= set(COUNTRIES)


# -- Someone else's address, and no one's ------------------------------------------------


def test_unauthenticated_requests_are_401_on_every_operation(api: Client) -> None:
    _, owner = logged_in("owner")
    address = address_create(customer=owner, data=AddressIn(**address_body()))
    before = rows(owner)
    path = f"{URL}/{address.pk}"
    for method, url, body in [
        ("get", URL, None),
        ("post", URL, address_body()),
        ("get", path, None),
        ("patch", path, {"city": "Elsewhere"}),
        ("delete", path, None),
        ("post", f"{path}/default", {}),
    ]:
        response = getattr(api, method)(url, body, content_type="application/json")
        assert (response.status_code, response.json()["code"]) == (401, "not_authenticated"), url
    assert rows(owner) == before
    assert Address.objects.count() == 1


def test_an_expired_session_token_is_401_session_expired(api: Client) -> None:
    response = api.get(URL, HTTP_X_SESSION_TOKEN="not-a-real-token")
    assert (response.status_code, response.json()["code"]) == (401, "session_expired")


def test_someone_elses_address_is_404_on_every_operation_and_nothing_changes() -> None:
    owner_client, owner = logged_in("owner")
    saved(owner_client, name="Owner Default")
    target = saved(owner_client, name="Owner Second")
    intruder, _ = logged_in("intruder")
    mine = saved(intruder, name="Intruder's own")
    before = rows(owner)
    path = f"{URL}/{target['id']}"
    for response in [
        intruder.get(path),
        patch(intruder, target["id"], {"city": "Stolen"}),
        intruder.delete(path),
        post(intruder, {}, url=f"{path}/default"),
    ]:
        assert (response.status_code, response.json()["code"]) == (404, "address_not_found")
    assert rows(owner) == before
    assert [a["id"] for a in intruder.get(URL).json()] == [mine["id"]]
    assert intruder.get(f"{URL}/{mine['id']}").json()["is_default"] is True


def test_an_unknown_address_id_is_the_same_404(ada_client: Client) -> None:
    response = ada_client.get(f"{URL}/{uuid.uuid4()}")
    assert (response.status_code, response.json()["code"]) == (404, "address_not_found")


def test_a_malformed_address_id_is_a_422(ada_client: Client) -> None:
    assert ada_client.get(f"{URL}/42").status_code == 422


# -- The admin ------------------------------------------------------------------------


def test_the_admin_lists_and_shows_addresses_read_only(
    staff_client: Client, ada: tuple[Client, User]
) -> None:
    saved(ada[0], name="Ada Admin-Visible")
    address = Address.objects.get()
    listing = staff_client.get("/admin/accounts/address/")
    assert listing.status_code == 200
    assert "Ada Admin-Visible" in listing.content.decode()
    page = staff_client.get(f"/admin/accounts/address/{address.pk}/change/")
    assert page.status_code == 200
    assert 'name="name"' not in page.content.decode()  # no form field: read-only
    assert staff_client.get("/admin/accounts/address/add/").status_code == 403
