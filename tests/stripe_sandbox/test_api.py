"""Every /v1 endpoint and every error class of the sandbox, driven through the official
`stripe` SDK (StripeClient pointed at the sandbox), with raw HTTP only where the SDK
cannot show what Stripe's wire format promises (missing API key, unknown routes,
replay headers on form-encoded POSTs)."""

import copy
import json
import urllib.request
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlencode

import pytest
import stripe

from tests.stripe_sandbox.harness import API_KEY, ControlError, SandboxServer, session_params

SUCCESS_CARD = "4242424242424242"
DECLINE_CARD = "4000000000000002"
TOTAL = 2 * 1500 + 2000  # the two line items of session_params()
DAY = 24 * 60 * 60

# Metadata that tells the session's own metadata apart from payment_intent_data's.
SESSION_METADATA = {"order_id": "ord_123", "source": "session"}
INTENT_METADATA = {"order_id": "ord_123", "source": "payment_intent_data"}


# -- helpers ----------------------------------------------------------------------------


def sandbox_now(sandbox: SandboxServer) -> int:
    return int(sandbox.control("clock")["now"])


def params_for(sandbox: SandboxServer, **overrides: Any) -> Any:
    """session_params() with expires_at taken from the sandbox clock (which tests move)."""
    overrides.setdefault("expires_at", sandbox_now(sandbox) + 3600)
    overrides.setdefault("metadata", dict(SESSION_METADATA))
    overrides.setdefault("payment_intent_data", {"metadata": dict(INTENT_METADATA)})
    return session_params(**overrides)


def create_session(sandbox: SandboxServer, **overrides: Any) -> Any:
    return sandbox.client().v1.checkout.sessions.create(params=params_for(sandbox, **overrides))


def pay(sandbox: SandboxServer, session_id: str, card: str = SUCCESS_CARD) -> Any:
    return sandbox.control(f"checkout/sessions/{session_id}/pay", {"card": card})


def paid_session(sandbox: SandboxServer, **overrides: Any) -> tuple[Any, Any, Any]:
    """A session paid with the success card: (session, payment intent, charge), as retrieved."""
    client = sandbox.client()
    created = create_session(sandbox, **overrides)
    pay(sandbox, created.id)
    session: Any = client.v1.checkout.sessions.retrieve(created.id)
    intent: Any = client.v1.payment_intents.retrieve(session.payment_intent)
    charge: Any = client.v1.charges.retrieve(intent.latest_charge)
    return session, intent, charge


def intent_id_of(sandbox: SandboxServer, session_id: str) -> str:
    intent_id = sandbox.client().v1.checkout.sessions.retrieve(session_id).payment_intent
    assert isinstance(intent_id, str)
    return intent_id


def refused(call: Any, error: type[stripe.StripeError] = stripe.InvalidRequestError) -> Any:
    """Runs `call`, which must raise `error`; returns the exception."""
    with pytest.raises(error) as caught:
        call()
    return caught.value


def raw(
    sandbox: SandboxServer,
    method: str,
    path: str,
    form: dict[str, Any] | None = None,
    *,
    api_key: str | None = API_KEY,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """A plain HTTP request with a form-encoded body: (status, headers, decoded JSON)."""
    all_headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    if api_key is not None:
        all_headers["Authorization"] = f"Bearer {api_key}"
    data = urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(
        f"{sandbox.url}{path}", data=data, method=method, headers=all_headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def without(params: Any, *path: str | int) -> Any:
    """A deep copy of `params` with the value at `path` removed."""
    result = copy.deepcopy(params)
    node = result
    for step in path[:-1]:
        node = node[step]
    del node[path[-1]]
    return result


def event_ids(sandbox: SandboxServer, **params: Any) -> list[str]:
    query: Any = {"limit": 100, **params}
    page = sandbox.client().v1.events.list(params=query)
    assert not page.has_more
    return [event.id for event in page.data]


# -- POST /v1/checkout/sessions ---------------------------------------------------------


def test_created_session_carries_amounts_currency_and_urls(sandbox: SandboxServer) -> None:
    session = create_session(sandbox)
    assert session.object == "checkout.session"
    assert session.id.startswith("cs_test_")
    assert session.mode == "payment"
    assert session.status == "open"
    assert session.payment_status == "unpaid"
    assert session.amount_total == TOTAL
    assert session.amount_subtotal == TOTAL
    assert session.currency == "usd"
    assert session.success_url == "http://shop.test/success?session_id={CHECKOUT_SESSION_ID}"
    assert session.cancel_url == "http://shop.test/cancel"


def test_created_session_carries_metadata_reference_and_email(sandbox: SandboxServer) -> None:
    session = create_session(sandbox)
    assert session.metadata.to_dict() == SESSION_METADATA
    assert session.client_reference_id == "ord_123"
    assert session.customer_email == "buyer@example.com"


def test_created_session_keeps_the_requested_expires_at(sandbox: SandboxServer) -> None:
    expires_at = sandbox_now(sandbox) + 2 * 3600
    session = create_session(sandbox, expires_at=expires_at)
    assert session.expires_at == expires_at


def test_session_without_expires_at_expires_after_24_hours(sandbox: SandboxServer) -> None:
    before = sandbox_now(sandbox)
    params = without(params_for(sandbox), "expires_at")
    session = sandbox.client().v1.checkout.sessions.create(params=params)
    assert before + DAY <= session.expires_at <= sandbox_now(sandbox) + DAY


def test_session_url_serves_the_hosted_checkout_page(sandbox: SandboxServer) -> None:
    session = create_session(sandbox)
    assert session.url == f"{sandbox.url}/checkout/pay/{session.id}"
    with urllib.request.urlopen(session.url, timeout=10) as response:
        page = response.read().decode()
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/html")
    assert "Ceramic Mug" in page
    assert "Classic Tee" in page


def test_payment_intent_data_metadata_ends_on_the_payment_intent(sandbox: SandboxServer) -> None:
    _, intent, _ = paid_session(sandbox)
    assert intent.metadata.to_dict() == INTENT_METADATA


def test_payment_intent_data_metadata_ends_on_the_charge(sandbox: SandboxServer) -> None:
    _, _, charge = paid_session(sandbox)
    assert charge.metadata.to_dict() == INTENT_METADATA


def test_session_metadata_stays_on_the_session_after_payment(sandbox: SandboxServer) -> None:
    session, _, _ = paid_session(sandbox)
    assert session.metadata.to_dict() == SESSION_METADATA


@pytest.mark.parametrize("minutes", [31, 23 * 60 + 59])
def test_expires_at_between_30_minutes_and_24_hours_is_accepted(
    sandbox: SandboxServer, minutes: int
) -> None:
    expires_at = sandbox_now(sandbox) + minutes * 60
    assert create_session(sandbox, expires_at=expires_at).expires_at == expires_at


@pytest.mark.parametrize(
    "seconds_from_now", [0, 29 * 60, DAY + 60, -3600], ids=["now", "29min", "24h1m", "past"]
)
def test_expires_at_outside_30_minutes_to_24_hours_is_refused(
    sandbox: SandboxServer, seconds_from_now: int
) -> None:
    expires_at = sandbox_now(sandbox) + seconds_from_now
    error = refused(lambda: create_session(sandbox, expires_at=expires_at))
    assert error.http_status == 400
    assert error.param == "expires_at"
    assert "expires_at" in str(error.user_message)


@pytest.mark.parametrize(
    ("path", "param"),
    [
        (("mode",), "mode"),
        (("success_url",), "success_url"),
        (("line_items",), "line_items"),
        (("line_items", 0, "quantity"), "line_items[0][quantity]"),
        (("line_items", 1, "price_data"), "line_items[1][price_data]"),
        (("line_items", 0, "price_data", "currency"), "line_items[0][price_data][currency]"),
        (("line_items", 0, "price_data", "unit_amount"), "line_items[0][price_data][unit_amount]"),
        (
            ("line_items", 0, "price_data", "product_data"),
            "line_items[0][price_data][product_data]",
        ),
    ],
)
def test_missing_required_param_is_refused_naming_it(
    sandbox: SandboxServer, path: tuple[str | int, ...], param: str
) -> None:
    params = without(params_for(sandbox), *path)
    error = refused(lambda: sandbox.client().v1.checkout.sessions.create(params=params))
    assert error.http_status == 400
    assert error.code == "parameter_missing"
    assert error.param == param
    assert param in str(error.user_message)


def test_product_data_without_a_name_is_refused_naming_it(sandbox: SandboxServer) -> None:
    params = params_for(sandbox)
    params["line_items"][1]["price_data"]["product_data"] = {"description": "no name"}
    error = refused(lambda: sandbox.client().v1.checkout.sessions.create(params=params))
    assert error.code == "parameter_missing"
    assert error.param == "line_items[1][price_data][product_data][name]"


def _with_unknown(params: Any, *path: str | int) -> Any:
    node = params
    for step in path:
        node = node[step]
    node["bogus"] = "x"
    return params


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ((), "bogus"),
        (("payment_intent_data",), "payment_intent_data[bogus]"),
        (("line_items", 0), "line_items[0][bogus]"),
        (("line_items", 0, "price_data"), "line_items[0][price_data][bogus]"),
        (
            ("line_items", 1, "price_data", "product_data"),
            "line_items[1][price_data][product_data][bogus]",
        ),
    ],
)
def test_unknown_param_is_refused_naming_it(
    sandbox: SandboxServer, path: tuple[str | int, ...], param: str
) -> None:
    params = _with_unknown(params_for(sandbox), *path)
    error = refused(lambda: sandbox.client().v1.checkout.sessions.create(params=params))
    assert error.http_status == 400
    assert error.code == "parameter_unknown"
    assert error.param == param
    assert str(error.user_message) == f"Received unknown parameter: {param}"


def test_unknown_param_on_a_retrieve_is_refused(sandbox: SandboxServer) -> None:
    session = create_session(sandbox)
    params: Any = {"bogus": "x"}
    error = refused(lambda: sandbox.client().v1.checkout.sessions.retrieve(session.id, params))
    assert (error.http_status, error.code, error.param) == (400, "parameter_unknown", "bogus")


@pytest.mark.parametrize(
    ("path", "value", "param"),
    [
        (("line_items", 0, "quantity"), "two", "line_items[0][quantity]"),
        (
            ("line_items", 1, "price_data", "unit_amount"),
            "12.50",
            "line_items[1][price_data][unit_amount]",
        ),
        (("expires_at",), "tomorrow", "expires_at"),
    ],
)
def test_invalid_integer_is_refused_naming_the_param(
    sandbox: SandboxServer, path: tuple[str | int, ...], value: str, param: str
) -> None:
    params = params_for(sandbox)
    node = params
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    error = refused(lambda: sandbox.client().v1.checkout.sessions.create(params=params))
    assert error.http_status == 400
    assert error.code == "parameter_invalid_integer"
    assert error.param == param


def test_non_positive_quantity_is_refused(sandbox: SandboxServer) -> None:
    params = params_for(sandbox)
    params["line_items"][0]["quantity"] = 0
    error = refused(lambda: sandbox.client().v1.checkout.sessions.create(params=params))
    assert (error.http_status, error.param) == (400, "line_items[0][quantity]")


def test_mixed_currencies_are_refused(sandbox: SandboxServer) -> None:
    params = params_for(sandbox)
    params["line_items"][1]["price_data"]["currency"] = "eur"
    error = refused(lambda: sandbox.client().v1.checkout.sessions.create(params=params))
    assert error.http_status == 400
    assert error.param == "line_items"
    assert sandbox.client().v1.checkout.sessions.list().data == []


def test_mode_other_than_payment_is_refused(sandbox: SandboxServer) -> None:
    error = refused(lambda: create_session(sandbox, mode="subscription"))
    assert (error.http_status, error.param) == (400, "mode")


# -- GET /v1/checkout/sessions, /{id}, /{id}/line_items, POST /{id}/expire --------------


def test_retrieved_session_equals_the_created_one(sandbox: SandboxServer) -> None:
    created = create_session(sandbox)
    retrieved = sandbox.client().v1.checkout.sessions.retrieve(created.id)
    assert retrieved.to_dict() == created.to_dict()


def test_paid_session_is_complete_and_names_its_payment_intent(sandbox: SandboxServer) -> None:
    session, intent, _ = paid_session(sandbox)
    assert session.status == "complete"
    assert session.payment_status == "paid"
    assert session.payment_intent == intent.id
    assert session.customer_details.email == "buyer@example.com"


def test_session_list_filtered_by_payment_intent_finds_only_its_session(
    sandbox: SandboxServer,
) -> None:
    first, first_intent, _ = paid_session(sandbox)
    second, second_intent, _ = paid_session(sandbox)
    create_session(sandbox)  # unpaid: no payment intent
    sessions = sandbox.client().v1.checkout.sessions
    assert [s.id for s in sessions.list({"payment_intent": first_intent.id}).data] == [first.id]
    assert [s.id for s in sessions.list({"payment_intent": second_intent.id}).data] == [second.id]


def test_session_list_is_newest_first(sandbox: SandboxServer) -> None:
    ids = [create_session(sandbox).id for _ in range(3)]
    listed = sandbox.client().v1.checkout.sessions.list()
    assert [s.id for s in listed.data] == list(reversed(ids))
    assert listed.has_more is False


def test_session_list_pages_with_limit_and_starting_after(sandbox: SandboxServer) -> None:
    ids = list(reversed([create_session(sandbox).id for _ in range(3)]))
    sessions = sandbox.client().v1.checkout.sessions
    first = sessions.list({"limit": 2})
    second = sessions.list({"limit": 2, "starting_after": first.data[-1].id})
    assert ([s.id for s in first.data], first.has_more) == (ids[:2], True)
    assert ([s.id for s in second.data], second.has_more) == (ids[2:], False)


def test_expiring_an_open_session_marks_it_expired(sandbox: SandboxServer) -> None:
    session = create_session(sandbox)
    sessions = sandbox.client().v1.checkout.sessions
    expired = sessions.expire(session.id)
    assert expired.status == "expired"
    assert expired.url is None
    assert sessions.retrieve(session.id).status == "expired"


def test_expiring_a_session_emits_checkout_session_expired(sandbox: SandboxServer) -> None:
    session = create_session(sandbox)
    sandbox.client().v1.checkout.sessions.expire(session.id)
    events = sandbox.client().v1.events.list({"type": "checkout.session.expired"}).data
    assert [e.data.object.id for e in events] == [session.id]


def test_expiring_a_complete_session_is_refused(sandbox: SandboxServer) -> None:
    session, _, _ = paid_session(sandbox)
    sessions = sandbox.client().v1.checkout.sessions
    error = refused(lambda: sessions.expire(session.id))
    assert error.http_status == 400
    assert "complete" in str(error.user_message)
    assert sessions.retrieve(session.id).status == "complete"


def test_expiring_an_expired_session_is_refused(sandbox: SandboxServer) -> None:
    session = create_session(sandbox)
    sessions = sandbox.client().v1.checkout.sessions
    sessions.expire(session.id)
    error = refused(lambda: sessions.expire(session.id))
    assert error.http_status == 400


def test_line_items_list_the_items_in_the_order_given(sandbox: SandboxServer) -> None:
    session = create_session(sandbox)
    items: Any = sandbox.client().v1.checkout.sessions.line_items.list(session.id)
    assert items.has_more is False
    summary = [
        (i.description, i.quantity, i.price.unit_amount, i.amount_total, i.currency)
        for i in items.data
    ]
    assert summary == [("Ceramic Mug", 2, 1500, 3000, "usd"), ("Classic Tee", 1, 2000, 2000, "usd")]
    assert sum(i.amount_total for i in items.data) == session.amount_total


def test_line_items_page_with_limit(sandbox: SandboxServer) -> None:
    session = create_session(sandbox)
    line_items = sandbox.client().v1.checkout.sessions.line_items
    first = line_items.list(session.id, {"limit": 1})
    second = line_items.list(session.id, {"limit": 1, "starting_after": first.data[0].id})
    assert ([i.description for i in first.data], first.has_more) == (["Ceramic Mug"], True)
    assert ([i.description for i in second.data], second.has_more) == (["Classic Tee"], False)


# -- GET /v1/payment_intents/{id}, /v1/charges/{id} -------------------------------------


def test_payment_intent_of_a_paid_session_has_succeeded(sandbox: SandboxServer) -> None:
    _, intent, charge = paid_session(sandbox)
    assert intent.object == "payment_intent"
    assert intent.status == "succeeded"
    assert intent.amount == TOTAL
    assert intent.amount_received == TOTAL
    assert intent.currency == "usd"
    assert intent.latest_charge == charge.id


def test_charge_of_a_paid_session_has_succeeded(sandbox: SandboxServer) -> None:
    _, intent, charge = paid_session(sandbox)
    assert charge.object == "charge"
    assert charge.status == "succeeded"
    assert charge.paid is True
    assert charge.amount == TOTAL
    assert charge.amount_refunded == 0
    assert charge.refunded is False
    assert charge.payment_intent == intent.id
    assert charge.payment_method_details.card.last4 == "4242"


def test_declined_payment_leaves_a_failed_charge_on_the_intent(sandbox: SandboxServer) -> None:
    session = create_session(sandbox)
    pay(sandbox, session.id, DECLINE_CARD)
    client = sandbox.client()
    intent: Any = client.v1.payment_intents.retrieve(intent_id_of(sandbox, session.id))
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error.decline_code == "generic_decline"
    charge = client.v1.charges.retrieve(intent.latest_charge)
    assert (charge.status, charge.paid, charge.failure_code) == ("failed", False, "card_declined")


UNKNOWN_ID_CALLS = {
    "session": lambda c: c.v1.checkout.sessions.retrieve("cs_test_missing"),
    "session_expire": lambda c: c.v1.checkout.sessions.expire("cs_test_missing"),
    "session_line_items": lambda c: c.v1.checkout.sessions.line_items.list("cs_test_missing"),
    "payment_intent": lambda c: c.v1.payment_intents.retrieve("pi_missing"),
    "charge": lambda c: c.v1.charges.retrieve("ch_missing"),
    "refund": lambda c: c.v1.refunds.retrieve("re_missing"),
    "event": lambda c: c.v1.events.retrieve("evt_missing"),
}


@pytest.mark.parametrize("call", UNKNOWN_ID_CALLS.values(), ids=UNKNOWN_ID_CALLS.keys())
def test_unknown_id_is_a_404_resource_missing(sandbox: SandboxServer, call: Any) -> None:
    error = refused(lambda: call(sandbox.client()))
    assert error.http_status == 404
    assert error.code == "resource_missing"
    assert "missing" in str(error.user_message)


def test_id_of_another_object_type_is_a_404(sandbox: SandboxServer) -> None:
    _, intent, _ = paid_session(sandbox)
    error = refused(lambda: sandbox.client().v1.charges.retrieve(intent.id))
    assert (error.http_status, error.code) == (404, "resource_missing")


# -- POST /v1/refunds, GET /v1/refunds, GET /v1/refunds/{id} ----------------------------


def test_refund_by_payment_intent_defaults_to_the_whole_amount(sandbox: SandboxServer) -> None:
    _, intent, charge = paid_session(sandbox)
    refund = sandbox.client().v1.refunds.create({"payment_intent": intent.id})
    assert refund.object == "refund"
    assert refund.amount == TOTAL
    assert refund.status == "succeeded"
    assert refund.charge == charge.id
    assert refund.payment_intent == intent.id
    assert refund.currency == "usd"


def test_refund_by_charge_refunds_that_charge(sandbox: SandboxServer) -> None:
    _, intent, charge = paid_session(sandbox)
    refund = sandbox.client().v1.refunds.create({"charge": charge.id, "amount": 700})
    assert (refund.amount, refund.charge, refund.payment_intent) == (700, charge.id, intent.id)


def test_refund_keeps_reason_and_metadata(sandbox: SandboxServer) -> None:
    _, intent, _ = paid_session(sandbox)
    refund: Any = sandbox.client().v1.refunds.create(
        {
            "payment_intent": intent.id,
            "reason": "requested_by_customer",
            "metadata": {"return_id": "ret_1"},
        }
    )
    assert refund.reason == "requested_by_customer"
    assert refund.metadata.to_dict() == {"return_id": "ret_1"}


def test_partial_refund_then_the_rest_refunds_the_remaining_amount(
    sandbox: SandboxServer,
) -> None:
    _, intent, charge = paid_session(sandbox)
    client = sandbox.client()
    first = client.v1.refunds.create({"payment_intent": intent.id, "amount": 1200})
    partly = client.v1.charges.retrieve(charge.id)
    assert (partly.amount_refunded, partly.refunded) == (1200, False)
    rest = client.v1.refunds.create({"payment_intent": intent.id})
    assert rest.amount == TOTAL - 1200
    assert first.id != rest.id
    fully = client.v1.charges.retrieve(charge.id)
    assert (fully.amount_refunded, fully.refunded) == (TOTAL, True)


def test_charge_lists_its_refunds_newest_first(sandbox: SandboxServer) -> None:
    _, intent, charge = paid_session(sandbox)
    client = sandbox.client()
    first = client.v1.refunds.create({"payment_intent": intent.id, "amount": 100})
    second = client.v1.refunds.create({"charge": charge.id, "amount": 200})
    refunds: Any = client.v1.charges.retrieve(charge.id).refunds
    assert [(r.id, r.amount) for r in refunds.data] == [(second.id, 200), (first.id, 100)]


def test_over_refund_is_refused_like_stripe(sandbox: SandboxServer) -> None:
    _, intent, _ = paid_session(sandbox)
    client = sandbox.client()
    client.v1.refunds.create({"payment_intent": intent.id, "amount": 1000})
    error = refused(
        lambda: client.v1.refunds.create({"payment_intent": intent.id, "amount": TOTAL - 999})
    )
    assert error.http_status == 400
    assert error.code == "amount_too_large"
    assert error.param == "amount"
    assert str(error.user_message) == (
        f"Refund amount ({TOTAL - 999}) is greater than unrefunded amount on charge "
        f"({TOTAL - 1000})"
    )


def test_refused_over_refund_changes_nothing(sandbox: SandboxServer) -> None:
    _, _, charge = paid_session(sandbox)
    client = sandbox.client()
    refused(lambda: client.v1.refunds.create({"charge": charge.id, "amount": TOTAL + 1}))
    assert client.v1.charges.retrieve(charge.id).amount_refunded == 0
    assert client.v1.refunds.list({"charge": charge.id}).data == []


def test_refunding_a_fully_refunded_charge_is_refused(sandbox: SandboxServer) -> None:
    _, intent, charge = paid_session(sandbox)
    client = sandbox.client()
    client.v1.refunds.create({"charge": charge.id})
    for params in ({"charge": charge.id}, {"payment_intent": intent.id, "amount": 1}):
        error = refused(lambda params=params: client.v1.refunds.create(params))
        assert error.http_status == 400
        assert error.code == "charge_already_refunded"


def test_refund_of_an_unpaid_payment_intent_is_refused(sandbox: SandboxServer) -> None:
    session = create_session(sandbox)
    pay(sandbox, session.id, DECLINE_CARD)
    client = sandbox.client()
    intent_id = intent_id_of(sandbox, session.id)
    error = refused(lambda: client.v1.refunds.create({"payment_intent": intent_id}))
    assert (error.http_status, error.param) == (400, "payment_intent")


def test_refund_needs_a_payment_intent_or_a_charge(sandbox: SandboxServer) -> None:
    error = refused(lambda: sandbox.client().v1.refunds.create({"amount": 100}))
    assert error.http_status == 400
    assert "payment_intent or charge" in str(error.user_message)


def test_refund_of_an_unknown_charge_is_refused_naming_it(sandbox: SandboxServer) -> None:
    error = refused(lambda: sandbox.client().v1.refunds.create({"charge": "ch_missing"}))
    assert (error.code, error.param) == ("resource_missing", "charge")


def test_refund_with_an_unknown_reason_is_refused(sandbox: SandboxServer) -> None:
    _, intent, _ = paid_session(sandbox)
    params: Any = {"payment_intent": intent.id, "reason": "changed_my_mind"}
    error = refused(lambda: sandbox.client().v1.refunds.create(params))
    assert (error.http_status, error.param) == (400, "reason")


def test_retrieved_refund_equals_the_created_one(sandbox: SandboxServer) -> None:
    _, intent, _ = paid_session(sandbox)
    client = sandbox.client()
    created = client.v1.refunds.create({"payment_intent": intent.id, "amount": 300})
    assert client.v1.refunds.retrieve(created.id).to_dict() == created.to_dict()


def test_refund_list_filters_by_payment_intent(sandbox: SandboxServer) -> None:
    _, first_intent, _ = paid_session(sandbox)
    _, second_intent, _ = paid_session(sandbox)
    refunds = sandbox.client().v1.refunds
    a = refunds.create({"payment_intent": first_intent.id, "amount": 100})
    b = refunds.create({"payment_intent": second_intent.id, "amount": 200})
    c = refunds.create({"payment_intent": first_intent.id, "amount": 300})
    assert [r.id for r in refunds.list({"payment_intent": first_intent.id}).data] == [c.id, a.id]
    assert [r.id for r in refunds.list({"payment_intent": second_intent.id}).data] == [b.id]
    assert [r.id for r in refunds.list().data] == [c.id, b.id, a.id]


def test_refund_list_filters_by_charge(sandbox: SandboxServer) -> None:
    _, _, first_charge = paid_session(sandbox)
    _, _, second_charge = paid_session(sandbox)
    refunds = sandbox.client().v1.refunds
    a = refunds.create({"charge": first_charge.id, "amount": 100})
    b = refunds.create({"charge": second_charge.id, "amount": 200})
    assert [r.id for r in refunds.list({"charge": first_charge.id}).data] == [a.id]
    assert [r.id for r in refunds.list({"charge": second_charge.id}).data] == [b.id]


# -- GET /v1/events/{id}, GET /v1/events ------------------------------------------------


def test_retrieved_event_embeds_the_object_as_it_was(sandbox: SandboxServer) -> None:
    _, intent, _ = paid_session(sandbox)
    client = sandbox.client()
    listed = client.v1.events.list({"type": "payment_intent.created"}).data
    assert len(listed) == 1
    event = client.v1.events.retrieve(listed[0].id)
    assert event.to_dict() == listed[0].to_dict()
    assert event.object == "event"
    assert event.data.object.id == intent.id
    assert event.data.object.status == "requires_payment_method"  # the state when it fired
    assert event.data.object.metadata.to_dict() == INTENT_METADATA


def test_paid_session_emits_stripes_events_newest_first(sandbox: SandboxServer) -> None:
    paid_session(sandbox)
    events = sandbox.client().v1.events.list().data
    assert [e.type for e in events] == [
        "checkout.session.completed",
        "payment_intent.succeeded",
        "charge.succeeded",
        "payment_intent.created",
    ]


def test_event_list_is_newest_first_across_time(sandbox: SandboxServer) -> None:
    first, _, _ = paid_session(sandbox)
    sandbox.control("clock/advance", {"seconds": 60})
    second, _, _ = paid_session(sandbox)
    events = sandbox.client().v1.events.list({"type": "checkout.session.completed"}).data
    assert [e.data.object.id for e in events] == [second.id, first.id]
    assert events[0].created >= events[1].created + 60


def test_event_list_filters_by_exact_type(sandbox: SandboxServer) -> None:
    _, first_intent, _ = paid_session(sandbox)
    _, second_intent, _ = paid_session(sandbox)
    events = sandbox.client().v1.events.list({"type": "payment_intent.succeeded"}).data
    assert {e.type for e in events} == {"payment_intent.succeeded"}
    assert [e.data.object.id for e in events] == [second_intent.id, first_intent.id]


def test_event_list_type_wildcard_matches_the_prefix_only(sandbox: SandboxServer) -> None:
    _, intent, _ = paid_session(sandbox)
    sandbox.client().v1.refunds.create({"payment_intent": intent.id})
    events = sandbox.client().v1.events.list({"type": "charge.*"}).data
    assert [e.type for e in events] == ["charge.refunded", "charge.succeeded"]


def test_event_list_filters_by_created_gte(sandbox: SandboxServer) -> None:
    paid_session(sandbox)
    sandbox.control("clock/advance", {"seconds": 120})
    since = sandbox_now(sandbox)
    session, intent, _ = paid_session(sandbox)
    events = sandbox.client().v1.events.list({"created": {"gte": since}}).data
    assert all(e.created >= since for e in events)
    related = {session.id, intent.id, intent.latest_charge}
    assert [e.data.object.id for e in events] == [
        session.id,
        intent.id,
        intent.latest_charge,
        intent.id,
    ]
    assert {e.data.object.id for e in events} == related


def test_event_list_filters_by_created_lt(sandbox: SandboxServer) -> None:
    first, _, _ = paid_session(sandbox)
    sandbox.control("clock/advance", {"seconds": 120})
    until = sandbox_now(sandbox)
    paid_session(sandbox)
    events = sandbox.client().v1.events.list({"created": {"lt": until}}).data
    assert len(events) == 4
    assert events[0].data.object.id == first.id
    assert all(e.created < until for e in events)


def test_event_list_pages_through_every_event_without_duplicates_or_gaps(
    sandbox: SandboxServer,
) -> None:
    for _ in range(3):
        _, intent, _ = paid_session(sandbox)
        sandbox.client().v1.refunds.create({"payment_intent": intent.id, "amount": 100})
    everything = event_ids(sandbox)
    assert len(everything) == 3 * 6
    walked: list[str] = []
    more_flags: list[bool] = []
    params: dict[str, Any] = {"limit": 5}
    while True:
        page = sandbox.client().v1.events.list(params)  # type: ignore[arg-type]
        walked += [e.id for e in page.data]
        more_flags.append(page.has_more)
        if not page.has_more:
            break
        params["starting_after"] = page.data[-1].id
    assert walked == everything
    assert len(set(walked)) == len(walked)
    assert more_flags == [True, True, True, False]


def test_event_list_paging_keeps_the_type_filter(sandbox: SandboxServer) -> None:
    for _ in range(3):
        paid_session(sandbox)
    events = sandbox.client().v1.events
    first = events.list({"type": "charge.succeeded", "limit": 2})
    rest = events.list(
        {"type": "charge.succeeded", "limit": 2, "starting_after": first.data[-1].id}
    )
    assert (len(first.data), first.has_more) == (2, True)
    assert (len(rest.data), rest.has_more) == (1, False)
    assert {e.type for e in [*first.data, *rest.data]} == {"charge.succeeded"}


def test_sdk_auto_paging_walks_every_event(sandbox: SandboxServer) -> None:
    for _ in range(2):
        paid_session(sandbox)
    everything = event_ids(sandbox)
    walked = [e.id for e in sandbox.client().v1.events.list({"limit": 3}).auto_paging_iter()]
    assert walked == everything


def test_event_list_starting_after_an_unknown_id_is_refused(sandbox: SandboxServer) -> None:
    error = refused(lambda: sandbox.client().v1.events.list({"starting_after": "evt_missing"}))
    assert (error.http_status, error.param) == (400, "starting_after")


@pytest.mark.parametrize("limit", [0, 101])
def test_list_limit_outside_1_to_100_is_refused(sandbox: SandboxServer, limit: int) -> None:
    error = refused(lambda: sandbox.client().v1.events.list({"limit": limit}))
    assert (error.http_status, error.param) == (400, "limit")


# -- Idempotency keys --------------------------------------------------------------------


def test_same_idempotency_key_and_params_replay_the_same_session(sandbox: SandboxServer) -> None:
    params = params_for(sandbox)
    sessions = sandbox.client().v1.checkout.sessions
    first = sessions.create(params=params, options={"idempotency_key": "order-1"})
    again = sessions.create(params=params, options={"idempotency_key": "order-1"})
    assert again.id == first.id
    assert again.to_dict() == first.to_dict()
    assert [s.id for s in sessions.list().data] == [first.id]


def test_replayed_response_is_marked_idempotent_replayed(sandbox: SandboxServer) -> None:
    params = params_for(sandbox)
    sessions = sandbox.client().v1.checkout.sessions
    first = sessions.create(params=params, options={"idempotency_key": "order-1"})
    again = sessions.create(params=params, options={"idempotency_key": "order-1"})
    assert first.last_response is not None
    assert again.last_response is not None
    assert "Idempotent-Replayed" not in first.last_response.headers
    assert again.last_response.headers["Idempotent-Replayed"] == "true"


def test_raw_form_post_replay_returns_the_same_bytes_with_the_header(
    sandbox: SandboxServer,
) -> None:
    _, intent, _ = paid_session(sandbox)
    form = {"payment_intent": intent.id, "amount": "250", "metadata[return]": "r1"}
    headers = {"Idempotency-Key": "refund-r1"}
    status1, headers1, body1 = raw(sandbox, "POST", "/v1/refunds", form, headers=headers)
    status2, headers2, body2 = raw(sandbox, "POST", "/v1/refunds", form, headers=headers)
    assert (status1, status2) == (200, 200)
    assert body2 == body1
    assert "Idempotent-Replayed" not in headers1
    assert headers2["Idempotent-Replayed"] == "true"
    assert [r.amount for r in sandbox.client().v1.refunds.list().data] == [250]


def test_replay_returns_the_first_response_not_the_current_state(sandbox: SandboxServer) -> None:
    params = params_for(sandbox)
    sessions = sandbox.client().v1.checkout.sessions
    first = sessions.create(params=params, options={"idempotency_key": "order-1"})
    pay(sandbox, first.id)
    again = sessions.create(params=params, options={"idempotency_key": "order-1"})
    assert again.status == "open"
    assert sessions.retrieve(first.id).status == "complete"


def test_a_failed_request_is_replayed_with_the_same_error(sandbox: SandboxServer) -> None:
    _, intent, _ = paid_session(sandbox)
    refunds = sandbox.client().v1.refunds
    params: Any = {"payment_intent": intent.id, "amount": TOTAL + 1}
    options: Any = {"idempotency_key": "refund-too-much"}
    first = refused(lambda: refunds.create(params, options))
    again = refused(lambda: refunds.create(params, options))
    assert first.code == "amount_too_large"
    assert (again.http_status, again.code, again.param, again.json_body) == (
        first.http_status,
        first.code,
        first.param,
        first.json_body,
    )
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"


def test_a_failed_request_is_replayed_even_once_it_would_succeed(sandbox: SandboxServer) -> None:
    session = create_session(sandbox)
    pay(sandbox, session.id, DECLINE_CARD)
    client = sandbox.client()
    intent_id = intent_id_of(sandbox, session.id)
    options: Any = {"idempotency_key": "refund-1"}
    first = refused(lambda: client.v1.refunds.create({"payment_intent": intent_id}, options))
    pay(sandbox, session.id, SUCCESS_CARD)  # now the refund would succeed
    again = refused(lambda: client.v1.refunds.create({"payment_intent": intent_id}, options))
    assert again.json_body == first.json_body
    assert again.http_status == 400
    assert client.v1.refunds.list().data == []
    assert client.v1.refunds.create({"payment_intent": intent_id}).amount == TOTAL


def test_same_key_with_different_params_is_an_idempotency_error(sandbox: SandboxServer) -> None:
    sessions = sandbox.client().v1.checkout.sessions
    sessions.create(params=params_for(sandbox), options={"idempotency_key": "order-1"})
    other = params_for(sandbox, client_reference_id="ord_456")
    error = refused(
        lambda: sessions.create(params=other, options={"idempotency_key": "order-1"}),
        stripe.IdempotencyError,
    )
    assert error.http_status == 400
    assert error.error is not None
    assert error.error.type == "idempotency_error"
    assert "order-1" in str(error.user_message)
    assert len(sessions.list().data) == 1


def test_same_key_on_another_endpoint_is_an_idempotency_error(sandbox: SandboxServer) -> None:
    _, intent, _ = paid_session(sandbox)
    client = sandbox.client()
    client.v1.checkout.sessions.create(
        params=params_for(sandbox), options={"idempotency_key": "shared"}
    )
    error = refused(
        lambda: client.v1.refunds.create(
            {"payment_intent": intent.id}, {"idempotency_key": "shared"}
        ),
        stripe.IdempotencyError,
    )
    assert error.http_status == 400
    assert client.v1.refunds.list().data == []


def test_idempotency_key_still_replays_just_before_24_hours(sandbox: SandboxServer) -> None:
    params = params_for(sandbox)
    sessions = sandbox.client().v1.checkout.sessions
    first = sessions.create(params=params, options={"idempotency_key": "order-1"})
    sandbox.control("clock/advance", {"seconds": DAY - 60})
    again = sessions.create(params=params, options={"idempotency_key": "order-1"})
    assert again.id == first.id


def test_idempotency_key_expires_after_24_hours(sandbox: SandboxServer) -> None:
    sessions = sandbox.client().v1.checkout.sessions
    first = sessions.create(params=params_for(sandbox), options={"idempotency_key": "order-1"})
    sandbox.control("clock/advance", {"seconds": DAY + 1})
    other = params_for(sandbox, client_reference_id="ord_456")
    second = sessions.create(params=other, options={"idempotency_key": "order-1"})
    assert second.id != first.id
    assert second.client_reference_id == "ord_456"
    assert second.last_response is not None
    assert "Idempotent-Replayed" not in second.last_response.headers


def test_requests_without_a_key_are_never_replayed(sandbox: SandboxServer) -> None:
    params = params_for(sandbox)
    sessions = sandbox.client().v1.checkout.sessions
    assert sessions.create(params=params).id != sessions.create(params=params).id


# -- Authentication ----------------------------------------------------------------------


def test_request_without_an_api_key_is_a_401(sandbox: SandboxServer) -> None:
    status, _, body = raw(sandbox, "GET", "/v1/events", api_key=None)
    assert status == 401
    assert body["error"]["type"] == "invalid_request_error"
    assert "API key" in body["error"]["message"]


def test_sdk_with_an_empty_api_key_raises_authentication_error(sandbox: SandboxServer) -> None:
    error = refused(lambda: sandbox.client(api_key="").v1.events.list(), stripe.AuthenticationError)
    assert error.http_status == 401


@pytest.mark.parametrize(
    "api_key", ["sk_live_fake_not_allowed", "pk_test_publishable", "rk_test_restrictedkey"]
)
def test_sdk_with_a_non_test_secret_key_raises_authentication_error(
    sandbox: SandboxServer, api_key: str
) -> None:
    client = sandbox.client(api_key=api_key)
    error = refused(
        lambda: client.v1.checkout.sessions.create(params=params_for(sandbox)),
        stripe.AuthenticationError,
    )
    assert error.http_status == 401
    assert error.json_body["error"]["code"] == "api_key_invalid"
    assert api_key not in str(error.user_message)  # Stripe masks the key it was given


def test_refused_key_creates_nothing(sandbox: SandboxServer) -> None:
    bad = sandbox.client(api_key="sk_live_fake_not_allowed")
    refused(lambda: bad.v1.checkout.sessions.create(params=params_for(sandbox)), stripe.StripeError)
    assert sandbox.client().v1.checkout.sessions.list().data == []


# -- Unknown routes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/customers"),
        ("POST", "/v1/checkout/sessions/cs_test_x/capture"),
        ("DELETE", "/v1/checkout/sessions"),
    ],
)
def test_unknown_route_is_a_404_in_stripes_error_envelope(
    sandbox: SandboxServer, method: str, path: str
) -> None:
    status, headers, body = raw(sandbox, method, path, {} if method == "POST" else None)
    assert status == 404
    assert headers["Content-Type"].startswith("application/json")
    assert body["error"]["type"] == "invalid_request_error"
    assert path in body["error"]["message"]


def test_sdk_raw_request_to_an_unknown_route_is_invalid_request_error(
    sandbox: SandboxServer,
) -> None:
    error = refused(lambda: sandbox.client().raw_request("get", "/v1/customers"))
    assert error.http_status == 404


# -- CardError and APIError --------------------------------------------------------------


def test_paying_with_an_unknown_card_is_a_402_card_error(sandbox: SandboxServer) -> None:
    session = create_session(sandbox)
    with pytest.raises(ControlError) as caught:
        pay(sandbox, session.id, "4111111111111111")
    assert caught.value.status == 402
    error = caught.value.body["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "card_error",
        "incorrect_number",
        "card",
    )
    assert sandbox.client().v1.checkout.sessions.retrieve(session.id).status == "open"


def test_the_sdk_reads_the_402_card_error_as_card_error(sandbox: SandboxServer) -> None:
    """No /v1 route declines a card (the hosted page does), so the SDK's own response
    handling is fed the sandbox's 402 answer as it came over the wire."""
    session = create_session(sandbox)
    request = urllib.request.Request(
        f"{sandbox.url}/_sandbox/checkout/sessions/{session.id}/pay",
        data=json.dumps({"card": "4111111111111111"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(HTTPError) as answer:
        urllib.request.urlopen(request, timeout=10)
    requestor = sandbox.client()._requestor
    error = refused(
        lambda: requestor._interpret_response(
            answer.value.read(), answer.value.code, dict(answer.value.headers), "V1"
        ),
        stripe.CardError,
    )
    assert (error.http_status, error.code, error.param) == (402, "incorrect_number", "card")


def test_injected_server_error_raises_api_error(sandbox: SandboxServer) -> None:
    sandbox.configure(api_error_rate=1.0)
    try:
        client = sandbox.client(max_network_retries=0)
        error = refused(lambda: client.v1.events.list(), stripe.APIError)
    finally:
        sandbox.configure(api_error_rate=0.0)
    assert error.http_status == 500
    assert error.error is not None
    assert error.error.type == "api_error"
    assert sandbox.client(max_network_retries=0).v1.events.list().data == []


def test_retry_with_the_same_key_after_a_server_error_creates_once(sandbox: SandboxServer) -> None:
    params = params_for(sandbox)
    sandbox.configure(api_error_rate=1.0)
    try:
        client = sandbox.client(max_network_retries=0)
        refused(
            lambda: client.v1.checkout.sessions.create(
                params=params, options={"idempotency_key": "order-1"}
            ),
            stripe.APIError,
        )
    finally:
        sandbox.configure(api_error_rate=0.0)
    sessions = sandbox.client(max_network_retries=0).v1.checkout.sessions
    created = sessions.create(params=params, options={"idempotency_key": "order-1"})
    assert created.last_response is not None
    assert "Idempotent-Replayed" not in created.last_response.headers  # the 500 was not stored
    assert [s.id for s in sessions.list().data] == [created.id]
