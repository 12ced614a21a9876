"""Stripe rules the shop must survive, through the official SDK: an Idempotency-Key whose
first request is still executing is a 409 `idempotency_key_in_use`, and a Checkout
Session's amount obeys Stripe's minimum and maximum charge and currency rules."""

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import stripe

from tests.stripe_sandbox.harness import SandboxServer, session_params


def one_item(currency: str, unit_amount: int, quantity: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "quantity": quantity,
            "price_data": {
                "currency": currency,
                "unit_amount": unit_amount,
                "product_data": {"name": "Thing"},
            },
        }
    ]


def create(sandbox: SandboxServer, currency: str, unit_amount: int, quantity: int = 1) -> Any:
    params = session_params(line_items=one_item(currency, unit_amount, quantity))
    client = sandbox.client(max_network_retries=0)
    return client.v1.checkout.sessions.create(params=params)


def refusal(sandbox: SandboxServer, currency: str, unit_amount: int, quantity: int = 1) -> Any:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        create(sandbox, currency, unit_amount, quantity)
    error = caught.value
    assert error.http_status == 400
    assert error.error is not None
    assert error.error.type == "invalid_request_error"
    return error


# -- Idempotency-Key still executing ------------------------------------------------------


def test_a_second_request_while_the_first_with_its_key_executes_is_a_409_in_use(
    sandbox: SandboxServer,
) -> None:
    sandbox.configure(api_latency_min=1.0, api_latency_max=1.0)
    client = sandbox.client(max_network_retries=0)
    params = session_params()
    options: Any = {"idempotency_key": "slow-order-1"}
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(client.v1.checkout.sessions.create, params=params, options=options)
        sandbox.wait_executing(idempotency_key="slow-order-1")
        with pytest.raises(stripe.StripeError) as caught:
            client.v1.checkout.sessions.create(params=params, options=options)
        created = first.result(10)
    error = caught.value
    assert error.http_status == 409
    # The SDK raises a plain APIError for a 409; Stripe's code is on the error object.
    assert error.error is not None
    assert (error.error.type, error.error.code) == (
        "invalid_request_error",
        "idempotency_key_in_use",
    )
    # The 409 was not stored under the key: once the first finished, a retry replays it.
    sandbox.configure(api_latency_min=0.0, api_latency_max=0.0)
    again = client.v1.checkout.sessions.create(params=params, options=options)
    assert again.id == created.id
    assert [s.id for s in client.v1.checkout.sessions.list().data] == [created.id]


def test_the_sdk_retries_an_in_use_409_and_gets_the_first_requests_session(
    sandbox: SandboxServer,
) -> None:
    sandbox.configure(api_latency_min=0.6, api_latency_max=0.6)
    params = session_params()
    options: Any = {"idempotency_key": "slow-order-2"}
    barrier = threading.Barrier(2)

    def create_one() -> Any:
        barrier.wait(5)
        return sandbox.client(max_network_retries=5).v1.checkout.sessions.create(
            params=params, options=options
        )

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(create_one) for _ in range(2)]
        sessions = [f.result(20) for f in futures]
    assert sessions[0].id == sessions[1].id
    assert len(sandbox.client().v1.checkout.sessions.list().data) == 1


def test_other_keys_are_not_blocked_by_a_request_in_flight(sandbox: SandboxServer) -> None:
    sandbox.configure(api_latency_min=0.5, api_latency_max=0.5)
    client = sandbox.client(max_network_retries=0)
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(
                client.v1.checkout.sessions.create,
                params=session_params(),
                options={"idempotency_key": f"independent-{i}"},
            )
            for i in range(2)
        ]
        ids = {f.result(10).id for f in futures}
    assert len(ids) == 2


# -- Amounts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "minimum"),
    [("usd", 50), ("eur", 50), ("gbp", 30), ("jpy", 50), ("chf", 50), ("hkd", 400)],
)
def test_a_total_under_the_currencys_minimum_charge_is_amount_too_small(
    sandbox: SandboxServer, currency: str, minimum: int
) -> None:
    error = refusal(sandbox, currency, minimum - 1)
    assert error.code == "amount_too_small"
    assert create(sandbox, currency, minimum).amount_total == minimum


def test_the_minimum_applies_to_the_total_not_to_each_unit(sandbox: SandboxServer) -> None:
    assert create(sandbox, "usd", 25, quantity=2).amount_total == 50


def test_an_unlisted_currency_has_a_minimum_of_50_minor_units(sandbox: SandboxServer) -> None:
    assert refusal(sandbox, "isk", 49).code == "amount_too_small"
    assert create(sandbox, "isk", 50).amount_total == 50


def test_a_zero_total_is_refused(sandbox: SandboxServer) -> None:
    assert refusal(sandbox, "usd", 0).code == "amount_too_small"


def test_a_total_over_eight_digits_is_amount_too_large(sandbox: SandboxServer) -> None:
    assert create(sandbox, "usd", 99_999_999).amount_total == 99_999_999
    error = refusal(sandbox, "usd", 50_000_000, quantity=2)
    assert error.code == "amount_too_large"


@pytest.mark.parametrize("currency", ["bhd", "jod", "kwd", "omr", "tnd"])
def test_three_decimal_currencies_need_amounts_ending_in_zero(
    sandbox: SandboxServer, currency: str
) -> None:
    error = refusal(sandbox, currency, 5005)
    assert error.code == "invalid_charge_amount"
    assert error.param == "line_items[0][price_data][unit_amount]"
    assert create(sandbox, currency, 5010).amount_total == 5010


def test_a_refused_amount_creates_nothing(sandbox: SandboxServer) -> None:
    refusal(sandbox, "usd", 10)
    assert sandbox.client().v1.checkout.sessions.list().data == []
