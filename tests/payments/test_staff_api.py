"""The staff refund API (`/api/v1/staff/orders/{id}/refunds`), against the Stripe sandbox
over real HTTP: a staff token or a staff session (with CSRF) refunds; anyone else, a
revoked token, another order's refund and an unknown order get a clean 4xx and change
nothing: no Refund row, no timeline entry, no request at Stripe."""

import secrets
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from djangomart.accounts.models import StaffApiToken
from djangomart.accounts.services import staff_token_create, staff_token_revoke
from djangomart.orders.models import Order, OrderEvent
from djangomart.payments.checkout import order_sync
from djangomart.payments.models import Refund
from tests.payments.stripe_proxy import Handler, StripeProxy
from tests.stripe_sandbox.harness import SandboxServer

pytestmark = pytest.mark.django_db(transaction=True)

GOOD_CARD = "4242424242424242"
SKU = "CLASSIC-TEE-M"  # 20.00 USD: two make an order of 4000
KEY = "staff-api-test-key-0001"


def paid_order(sandbox: SandboxServer, quantity: int = 2) -> Order:
    """A checkout paid at the sandbox and synced: the order paid, its Payment row."""
    from djangomart.catalog.demo import demo_catalog_seed

    demo_catalog_seed()
    response = Client().post(
        "/api/v1/checkout",
        {"email": "buyer@example.com", "lines": [{"sku": SKU, "quantity": quantity}]},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    sandbox.control(f"checkout/sessions/{body['checkout_session_id']}/pay", {"card": GOOD_CARD})
    order = order_sync(order_id=uuid.UUID(body["order"]["id"]))
    assert (order.status, order.amount_paid) == ("paid", 2000 * quantity)
    return order


def staff_member(username: str, *codenames: str, **fields: Any) -> User:
    user = User.objects.create_user(username, f"{username}@example.com", "pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    if fields:
        User.objects.filter(pk=user.pk).update(**fields)
        user.refresh_from_db()
    return user


@pytest.fixture
def refunder(db: None) -> User:
    return staff_member("alice", "add_refund")


@pytest.fixture
def token(refunder: User) -> str:
    return staff_token_create(refunder, "tests")[0]


def bearer(token: str) -> dict[str, Any]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def session_client(user: User, *, csrf: bool = True) -> tuple[Client, dict[str, Any]]:
    """A browser-like client logged in as `user`, and the CSRF header (unless not)."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/api/v1/csrf")
    return client, ({"HTTP_X_CSRFTOKEN": client.cookies["csrftoken"].value} if csrf else {})


def refunds_url(order_id: Any) -> str:
    return f"/api/v1/staff/orders/{order_id}/refunds"


def refund_post(
    client: Client, order_id: Any, body: Any = None, *, key: str | None = KEY, **headers: Any
) -> Any:
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return client.post(
        refunds_url(order_id),
        {} if body is None else body,
        content_type="application/json",
        **headers,
    )


def refund_posts(sandbox: SandboxServer) -> list[dict[str, Any]]:
    return sandbox.requests(method="POST", path="/v1/refunds")


def charge_of(sandbox: SandboxServer, order: Order) -> dict[str, Any]:
    intent = sandbox.client().v1.payment_intents.retrieve(str(order.stripe_payment_intent_id))
    return sandbox.client().v1.charges.retrieve(str(intent.latest_charge)).to_dict()


def state(sandbox: SandboxServer, *orders: Order) -> tuple[Any, ...]:
    """Everything a refused request must leave alone."""
    rows = list(Refund.objects.order_by("pk").values_list("pk", "status", "order_id"))
    events = list(
        OrderEvent.objects.filter(order__in=orders).order_by("pk").values_list("pk", flat=True)
    )
    money = list(
        Order.objects.filter(pk__in=[o.pk for o in orders])
        .order_by("pk")
        .values_list("amount_refunded", "payment_status", "needs_attention")
    )
    return rows, events, money, len(sandbox.requests())


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["message"]
    return body


def failed_refund(
    sandbox: SandboxServer, client: Client, token: str, order: Order
) -> tuple[dict[str, Any], str]:
    """A refund Stripe refuses: the charge is disputed at Stripe (DjangoMart has not
    heard of it yet). Returns the API's refund and the dispute's id."""
    opened = sandbox.control(f"charges/{charge_of(sandbox, order)['id']}/dispute", {})
    response = refund_post(
        client,
        order.pk,
        {"amount": 1000, "note": "Late parcel"},
        key="failed-refund-key-01",
        **bearer(token),
    )
    assert response.status_code == 201, response.content
    refund: dict[str, Any] = response.json()["refund"]
    assert refund["status"] == "failed"
    return refund, str(opened["id"])


# -- Refunding ---------------------------------------------------------------------------


def test_a_staff_token_refunds_part_of_the_order_then_a_staff_session_the_rest(
    sandbox: SandboxServer, refunder: User, token: str
) -> None:
    order = paid_order(sandbox)
    api = Client()
    body = {"amount": 1500, "reason": "requested_by_customer", "note": "Mug broke"}
    response = refund_post(api, order.pk, body, **bearer(token))

    assert response.status_code == 201, response.content
    answer = response.json()
    refund = Refund.objects.get()
    assert answer["refund"] == {
        "id": str(refund.pk),
        "order_id": str(order.pk),
        "stripe_refund_id": refund.stripe_refund_id,
        "amount": 1500,
        "currency": "usd",
        "status": "succeeded",
        "reason": "requested_by_customer",
        "failure_reason": None,
        "last_error": None,
        "origin": "staff",
        "requested_by": "alice",
        "note": "Mug broke",
        "created_at": answer["refund"]["created_at"],
    }
    assert refund.stripe_refund_id is not None
    assert refund.stripe_refund_id.startswith("re_")
    assert (refund.requested_by, refund.idempotency_key) == (refunder, KEY)
    order.refresh_from_db()
    assert answer["order"] == {
        "id": str(order.pk),
        "currency": "usd",
        "payment_status": order.payment_status,
        "amount_paid": 4000,
        "amount_refunded": order.amount_refunded,
        "refundable": 2500,
    }
    [post] = refund_posts(sandbox)
    assert post["idempotency_key"] == f"refund:{refund.pk}"
    assert (post["params"]["amount"], post["params"]["reason"]) == ("1500", "requested_by_customer")
    assert charge_of(sandbox, order)["amount_refunded"] == 1500
    assert StaffApiToken.objects.get().last_used_at is not None

    # The rest, from the admin's session (unsafe: with the CSRF token); no amount: full.
    browser, csrf = session_client(staff_member("bob", "add_refund"))
    response = refund_post(browser, order.pk, {}, key="staff-api-test-key-0002", **csrf)
    assert response.status_code == 201, response.content
    rest = response.json()
    assert (rest["refund"]["amount"], rest["refund"]["status"]) == (2500, "succeeded")
    assert (rest["refund"]["requested_by"], rest["order"]["refundable"]) == ("bob", 0)
    assert charge_of(sandbox, order)["amount_refunded"] == 4000
    assert len(refund_posts(sandbox)) == 2

    # Nothing is left: refused before Stripe is asked.
    before = state(sandbox, order)
    response = refund_post(api, order.pk, {}, key="staff-api-test-key-0003", **bearer(token))
    refused = assert_error(response, 409, "refund_exceeds_refundable")
    assert (refused["refundable"], refused["currency"]) == (0, "usd")
    assert state(sandbox, order) == before


def test_the_same_idempotency_key_and_body_replay_the_refund_and_another_body_is_refused(
    sandbox: SandboxServer, token: str
) -> None:
    order = paid_order(sandbox)
    api = Client()
    body = {"amount": 1000, "reason": "duplicate"}
    first = refund_post(api, order.pk, body, **bearer(token))
    again = refund_post(api, order.pk, body, **bearer(token))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["refund"]["id"] == first.json()["refund"]["id"]
    assert again.json()["order"]["refundable"] == 3000
    assert len(refund_posts(sandbox)) == 1
    before = state(sandbox, order)
    reused = refund_post(api, order.pk, {"amount": 999, "reason": "duplicate"}, **bearer(token))
    assert_error(reused, 422, "idempotency_key_reused")
    assert state(sandbox, order) == before


class RefundsDown:
    """A proxy rule: every POST /v1/refunds is a 500 before Stripe sees it."""

    def __call__(
        self, proxy: StripeProxy, method: str, path: str, count: int, handler: Handler, body: bytes
    ) -> bool:
        if (method, path) != ("POST", "/v1/refunds"):
            return False
        handler.answer_500()
        return True


def test_a_refund_stripe_has_not_answered_is_a_202_pending_and_counted(
    sandbox: SandboxServer, token: str, stripe_proxy: Callable[..., StripeProxy]
) -> None:
    order = paid_order(sandbox)
    stripe_proxy(RefundsDown())
    response = refund_post(Client(), order.pk, {"amount": 1200}, **bearer(token))
    assert response.status_code == 202, response.content
    answer = response.json()
    assert (answer["refund"]["status"], answer["refund"]["stripe_refund_id"]) == ("pending", None)
    assert "Stripe could not be reached" in answer["refund"]["last_error"]
    assert answer["order"]["refundable"] == 2800  # on its way back: counted
    assert refund_posts(sandbox) == []
    # Polled: the same refund, still waiting for the recovery job.
    detail = Client().get(f"{refunds_url(order.pk)}/{answer['refund']['id']}", **bearer(token))
    assert detail.status_code == 200
    assert detail.json()["refund"]["status"] == "pending"


def test_a_refund_stripe_refuses_is_failed_and_retried_once_through_the_api(
    sandbox: SandboxServer, token: str
) -> None:
    order = paid_order(sandbox)
    api = Client()
    failed, dispute_id = failed_refund(sandbox, api, token, order)
    assert (failed["failure_reason"], failed["stripe_refund_id"]) == ("charge_disputed", None)
    assert failed["last_error"]
    assert len(refund_posts(sandbox)) == 1  # asked, and refused

    retry_url = f"{refunds_url(order.pk)}/{failed['id']}/retry"
    sandbox.control(f"disputes/{dispute_id}/close", {"outcome": "won"})
    response = api.post(retry_url, **bearer(token))
    assert response.status_code == 201, response.content
    retried = response.json()["refund"]
    assert retried["id"] != failed["id"]
    assert (retried["status"], retried["amount"], retried["note"]) == (
        "succeeded",
        1000,
        "Late parcel",
    )
    again = api.post(retry_url, **bearer(token))
    assert again.status_code == 200
    assert again.json()["refund"]["id"] == retried["id"]
    assert len(refund_posts(sandbox)) == 2
    before = state(sandbox, order)
    not_retryable = api.post(f"{refunds_url(order.pk)}/{retried['id']}/retry", **bearer(token))
    assert_error(not_retryable, 409, "refund_not_retryable")
    assert state(sandbox, order) == before
    assert charge_of(sandbox, order)["amount_refunded"] == 1000


def test_the_list_and_the_detail_show_the_orders_refunds_in_a_fixed_number_of_queries(
    sandbox: SandboxServer, token: str
) -> None:
    order = paid_order(sandbox)
    api = Client()
    for n, amount in enumerate((100, 200)):
        assert (
            refund_post(
                api, order.pk, {"amount": amount}, key=f"list-key-000000{n}", **bearer(token)
            ).status_code
            == 201
        )

    def listed() -> tuple[Any, int]:
        with CaptureQueriesContext(connection) as queries:
            response = api.get(refunds_url(order.pk), **bearer(token))
        assert response.status_code == 200
        return response.json(), len(queries)

    two, queries_for_two = listed()
    assert [r["amount"] for r in two["refunds"]] == [100, 200]
    assert two["order"]["refundable"] == 3700
    assert (
        refund_post(
            api, order.pk, {"amount": 300}, key="list-key-0000002", **bearer(token)
        ).status_code
        == 201
    )
    three, queries_for_three = listed()
    assert [r["amount"] for r in three["refunds"]] == [100, 200, 300]
    assert {r["requested_by"] for r in three["refunds"]} == {"alice"}
    assert queries_for_three == queries_for_two  # no query per refund

    first = three["refunds"][0]
    detail = api.get(f"{refunds_url(order.pk)}/{first['id']}", **bearer(token))
    assert detail.status_code == 200
    assert detail.json() == {"refund": first, "order": three["order"]}


# -- Who may ------------------------------------------------------------------------------


def _none(token: str) -> tuple[Client, dict[str, Any]]:
    return Client(), {}


def _unknown_token(token: str) -> tuple[Client, dict[str, Any]]:
    return Client(), bearer("dmst_" + secrets.token_urlsafe(32))


def _malformed_token(token: str) -> tuple[Client, dict[str, Any]]:
    return Client(), bearer("not-a-token")


def _basic(token: str) -> tuple[Client, dict[str, Any]]:
    return Client(), {"HTTP_AUTHORIZATION": "Basic YWxpY2U6cHc="}


def _revoked_token(token: str) -> tuple[Client, dict[str, Any]]:
    staff_token_revoke(StaffApiToken.objects.get())
    return Client(), bearer(token)


def _inactive_users_token(token: str) -> tuple[Client, dict[str, Any]]:
    User.objects.filter(username="alice").update(is_active=False)
    return Client(), bearer(token)


def _former_staffs_token(token: str) -> tuple[Client, dict[str, Any]]:
    User.objects.filter(username="alice").update(is_staff=False)
    return Client(), bearer(token)


def _token_without_permission(token: str) -> tuple[Client, dict[str, Any]]:
    return Client(), bearer(staff_token_create(staff_member("viewer", "view_refund"))[0])


def _customer_session(token: str) -> tuple[Client, dict[str, Any]]:
    customer = User.objects.create_user("customer", "c@example.com", "pw")
    customer.user_permissions.add(Permission.objects.get(codename="add_refund"))
    return session_client(customer)


def _staff_session_without_permission(token: str) -> tuple[Client, dict[str, Any]]:
    return session_client(staff_member("viewer", "view_refund", "view_order", "change_order"))


def _session_without_csrf(token: str) -> tuple[Client, dict[str, Any]]:
    return session_client(staff_member("bob", "add_refund"), csrf=False)


@pytest.mark.parametrize(
    ("credentials", "status", "code", "challenge"),
    [
        (_none, 401, "not_authenticated", 'Bearer realm="DjangoMart staff API"'),
        (_unknown_token, 401, "not_authenticated", 'error="invalid_token"'),
        (_malformed_token, 401, "not_authenticated", 'error="invalid_token"'),
        (_basic, 401, "not_authenticated", "Bearer"),
        (_revoked_token, 401, "not_authenticated", 'error="invalid_token"'),
        (_inactive_users_token, 401, "not_authenticated", 'error="invalid_token"'),
        (_former_staffs_token, 403, "permission_denied", None),
        (_token_without_permission, 403, "permission_denied", None),
        (_customer_session, 403, "permission_denied", None),
        (_staff_session_without_permission, 403, "permission_denied", None),
        (_session_without_csrf, 403, "csrf_failed", None),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_a_refund_by_anyone_but_permitted_staff_is_refused_and_changes_nothing(
    sandbox: SandboxServer,
    token: str,
    credentials: Callable[[str], tuple[Client, dict[str, Any]]],
    status: int,
    code: str,
    challenge: str | None,
) -> None:
    order = paid_order(sandbox)
    before = state(sandbox, order)
    client, headers = credentials(token)
    response = refund_post(client, order.pk, {"amount": 100}, **headers)
    assert_error(response, status, code)
    if challenge is None:
        assert "WWW-Authenticate" not in response
    else:
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert challenge in response["WWW-Authenticate"]
    assert state(sandbox, order) == before


def test_reading_and_retrying_need_credentials_and_a_permission_too(
    sandbox: SandboxServer, token: str
) -> None:
    order = paid_order(sandbox)
    failed, _ = failed_refund(sandbox, Client(), token, order)
    before = state(sandbox, order)
    base = refunds_url(order.pk)
    calls = [
        ("get", base),
        ("get", f"{base}/{failed['id']}"),
        ("post", f"{base}/{failed['id']}/retry"),
    ]
    customer = User.objects.create_user("customer", "c@example.com", "pw")
    both = Permission.objects.filter(codename__in=["view_refund", "add_refund"])
    customer.user_permissions.add(*both)
    nobody = bearer(staff_token_create(staff_member("nobody"))[0])
    for method, url in calls:
        assert_error(getattr(Client(), method)(url), 401, "not_authenticated")
        assert_error(getattr(Client(), method)(url, **nobody), 403, "permission_denied")
        browser, csrf = session_client(customer)
        assert_error(getattr(browser, method)(url, **csrf), 403, "permission_denied")
    assert state(sandbox, order) == before
    # Reading needs view_refund (or add_refund); retrying add_refund or retry_refund.
    reader = bearer(staff_token_create(staff_member("reader", "view_refund"))[0])
    assert Client().get(base, **reader).status_code == 200
    assert_error(Client().post(calls[2][1], **reader), 403, "permission_denied")
    retrier = bearer(staff_token_create(staff_member("retrier", "retry_refund"))[0])
    assert_error(Client().get(base, **retrier), 403, "permission_denied")
    assert state(sandbox, order) == before


def test_another_orders_refund_and_an_unknown_order_are_404s_that_change_nothing(
    sandbox: SandboxServer, token: str
) -> None:
    order = paid_order(sandbox)
    other = paid_order(sandbox, quantity=1)
    api = Client()
    failed, _ = failed_refund(sandbox, api, token, order)
    before = state(sandbox, order, other)
    elsewhere = f"{refunds_url(other.pk)}/{failed['id']}"
    assert_error(api.get(elsewhere, **bearer(token)), 404, "not_found")
    assert_error(api.post(f"{elsewhere}/retry", **bearer(token)), 404, "not_found")
    unknown = uuid.uuid4()
    assert_error(refund_post(api, unknown, {"amount": 100}, **bearer(token)), 404, "not_found")
    assert_error(refund_post(api, unknown, {}, **bearer(token)), 404, "not_found")
    assert_error(api.get(refunds_url(unknown), **bearer(token)), 404, "not_found")
    assert_error(
        api.get(f"{refunds_url(unknown)}/{failed['id']}", **bearer(token)), 404, "not_found"
    )
    assert_error(
        api.get(f"{refunds_url(order.pk)}/{uuid.uuid4()}", **bearer(token)), 404, "not_found"
    )
    assert state(sandbox, order, other) == before
    assert api.get(refunds_url(other.pk), **bearer(token)).json()["refunds"] == []


# -- Bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "key", "location"),
    [
        pytest.param({"amount": 0}, KEY, "amount", id="amount-0"),
        pytest.param({"amount": -100}, KEY, "amount", id="amount-negative"),
        pytest.param({"amount": "1500"}, KEY, "amount", id="amount-string"),
        pytest.param({"amount": 15.5}, KEY, "amount", id="amount-float"),
        pytest.param({"amount": True}, KEY, "amount", id="amount-bool"),
        pytest.param({"amount": 10**13}, KEY, "amount", id="amount-huge"),
        pytest.param({"reason": "changed_my_mind"}, KEY, "reason", id="reason-unknown"),
        pytest.param({"reason": ""}, KEY, "reason", id="reason-empty"),
        pytest.param({"note": "x" * 501}, KEY, "note", id="note-long"),
        pytest.param({"note": "bad\x00note"}, KEY, "note", id="note-nul"),
        pytest.param({"amount": 100}, None, "header.Idempotency-Key", id="key-missing"),
        pytest.param({"amount": 100}, "short-key", "header.Idempotency-Key", id="key-short"),
        pytest.param(
            {"amount": 100}, "a key with spaces!", "header.Idempotency-Key", id="key-spaces"
        ),
        pytest.param({"amount": 100}, "k" * 256, "header.Idempotency-Key", id="key-long"),
    ],
)
def test_bad_input_is_a_422_naming_it_and_changes_nothing(
    sandbox: SandboxServer, token: str, body: dict[str, Any], key: str | None, location: str
) -> None:
    order = paid_order(sandbox)
    before = state(sandbox, order)
    response = refund_post(Client(), order.pk, body, key=key, **bearer(token))
    refused = assert_error(response, 422, "validation_error")
    assert location in [d["location"] for d in refused["details"]]
    assert state(sandbox, order) == before


def test_a_body_that_is_not_json_is_a_400_and_changes_nothing(
    sandbox: SandboxServer, token: str
) -> None:
    order = paid_order(sandbox)
    before = state(sandbox, order)
    response = refund_post(Client(), order.pk, '{"amount": 1', **bearer(token))
    assert_error(response, 400, "bad_request")
    assert state(sandbox, order) == before


# -- The schema ---------------------------------------------------------------------------


def test_the_openapi_schema_documents_the_staff_api(db: None) -> None:
    schema = Client().get("/api/v1/openapi.json").json()
    paths = schema["paths"]
    base = "/api/v1/staff/orders/{order_id}/refunds"
    expected = {
        ("post", base): {"200", "201", "202", "400", "401", "403", "404", "409", "422"},
        ("get", base): {"200", "400", "401", "403", "404", "422"},
        ("get", base + "/{refund_id}"): {"200", "400", "401", "403", "404", "422"},
        ("post", base + "/{refund_id}/retry"): {
            "200",
            "201",
            "202",
            "400",
            "401",
            "403",
            "404",
            "409",
            "422",
        },
    }
    for (method, path), statuses in expected.items():
        operation = paths[path][method]
        assert set(operation["responses"]) == statuses, (method, path)
        assert operation["tags"] == ["staff"]
        assert operation["security"] == [{"StaffBearerAuth": []}, {"StaffSessionAuth": []}]
    create = paths[base]["post"]
    assert "refund_exceeds_refundable" in create["responses"]["409"]["description"]
    assert "idempotency_key_reused" in create["responses"]["422"]["description"]
    [key] = [p for p in create["parameters"] if p["in"] == "header"]
    assert (key["name"], key["required"]) == ("Idempotency-Key", True)
    assert (key["schema"]["minLength"], key["schema"]["maxLength"]) == (16, 255)
    body = schema["components"]["schemas"]["StaffRefundIn"]["properties"]
    amount = body["amount"]["anyOf"][0]
    assert (amount["type"], amount["minimum"]) == ("integer", 1)
    assert body["reason"]["anyOf"][0]["enum"] == [
        "duplicate",
        "fraudulent",
        "requested_by_customer",
    ]
    schemes = schema["components"]["securitySchemes"]
    assert schemes["StaffBearerAuth"] == {
        **schemes["StaffBearerAuth"],
        "type": "http",
        "scheme": "bearer",
    }
    assert (schemes["StaffSessionAuth"]["in"], schemes["StaffSessionAuth"]["name"]) == (
        "cookie",
        "sessionid",
    )
