"""GET /_sandbox/requests: every /v1 request the sandbox answered, so that a test can
prove what reached "Stripe" (a retry, its Idempotency-Key, its parameters) instead of
inferring it from the outcome."""

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import stripe

from stripe_sandbox.state import SANDBOX
from stripe_sandbox.store import REQUEST_LOG_SIZE, RequestLog
from tests.stripe_sandbox.harness import ControlError, SandboxServer, session_params


def client(sandbox: SandboxServer) -> stripe.StripeClient:
    return sandbox.client(max_network_retries=0, http_client=stripe.RequestsClient(timeout=10))


def test_each_request_is_logged_with_its_key_parameters_status_and_replay_flag(
    sandbox: SandboxServer,
) -> None:
    params = session_params()
    options: Any = {"idempotency_key": "log-order-1"}
    created = client(sandbox).v1.checkout.sessions.create(params=params, options=options)
    client(sandbox).v1.checkout.sessions.create(params=params, options=options)
    client(sandbox).v1.checkout.sessions.retrieve(created.id)

    first, replay, retrieve = sandbox.requests()
    assert (first["method"], first["path"], first["idempotency_key"]) == (
        "POST",
        "/v1/checkout/sessions",
        "log-order-1",
    )
    assert (first["status"], first["idempotent_replayed"]) == (200, False)
    assert (replay["status"], replay["idempotent_replayed"]) == (200, True)
    # The parameters as decoded from Stripe's form encoding (values are strings).
    assert first["params"]["metadata"] == {"order_id": "ord_123"}
    assert first["params"]["line_items"][0]["price_data"]["unit_amount"] == "1500"
    assert replay["params"] == first["params"]
    assert replay["params_sha256"] == first["params_sha256"]
    assert first["id"].startswith("req_")
    assert first["id"] != replay["id"]
    assert isinstance(first["time"], float)
    assert (retrieve["method"], retrieve["path"]) == ("GET", f"/v1/checkout/sessions/{created.id}")
    assert (retrieve["idempotency_key"], retrieve["params"]) == (None, {})
    assert not any(
        r["answer_dropped"] or r["injected_error"] or r["error"] for r in [first, replay]
    )


def test_a_request_still_executing_is_listed_without_a_status(sandbox: SandboxServer) -> None:
    sandbox.configure(api_latency_min=2.0, api_latency_max=2.0)
    options: Any = {"idempotency_key": "log-slow"}
    with ThreadPoolExecutor(1) as pool:
        created = pool.submit(
            client(sandbox).v1.checkout.sessions.create, params=session_params(), options=options
        )
        executing = sandbox.wait_executing(idempotency_key="log-slow")
        assert (executing["status"], executing["params"]["mode"]) == (None, "payment")
        created.result(10)
    [done] = sandbox.requests(idempotency_key="log-slow")
    assert (done["id"], done["status"]) == (executing["id"], 200)


def test_refused_requests_are_logged_with_their_status_and_stripe_error(
    sandbox: SandboxServer,
) -> None:
    with pytest.raises(stripe.InvalidRequestError):
        client(sandbox).v1.checkout.sessions.create(params=session_params(colour="red"))
    with pytest.raises(stripe.AuthenticationError):
        sandbox.client("sk_live_not_ours", max_network_retries=0).v1.checkout.sessions.list()

    unknown, unauthenticated = sandbox.requests()
    assert (unknown["status"], unknown["error"]) == (
        400,
        {"type": "invalid_request_error", "code": "parameter_unknown"},
    )
    assert unknown["params"]["colour"] == "red"
    # Refused before its parameters were read.
    assert (unauthenticated["status"], unauthenticated["params"]) == (401, None)


def test_a_dropped_answer_and_an_injected_500_are_marked(sandbox: SandboxServer) -> None:
    params = session_params()
    options: Any = {"idempotency_key": "log-order-2"}
    sandbox.configure(api_timeout_rate=1.0, api_timeout_seconds=0.1)
    with pytest.raises(stripe.APIConnectionError):
        client(sandbox).v1.checkout.sessions.create(params=params, options=options)
    # The retry is answered from the idempotency store; a replay is never dropped.
    client(sandbox).v1.checkout.sessions.create(params=params, options=options)
    sandbox.configure(api_timeout_rate=0.0, api_error_rate=1.0)
    with pytest.raises(stripe.APIError):
        client(sandbox).v1.checkout.sessions.list()

    lost, replay, failed = sandbox.requests()
    assert (lost["status"], lost["answer_dropped"], lost["idempotent_replayed"]) == (
        200,
        True,
        False,
    )
    assert (replay["status"], replay["answer_dropped"], replay["idempotent_replayed"]) == (
        200,
        False,
        True,
    )
    assert (failed["status"], failed["injected_error"], failed["answer_dropped"]) == (
        500,
        True,
        False,
    )


def test_the_log_filters_by_method_path_and_idempotency_key(sandbox: SandboxServer) -> None:
    stripe_client = client(sandbox)
    for key in ("filter-a", "filter-b"):
        stripe_client.v1.checkout.sessions.create(
            params=session_params(), options={"idempotency_key": key}
        )
    stripe_client.v1.checkout.sessions.list(params={"limit": 3})

    posts = sandbox.requests(method="post", path="/v1/checkout/sessions")
    assert [r["idempotency_key"] for r in posts] == ["filter-a", "filter-b"]
    [listed] = sandbox.requests(method="GET")
    assert listed["params"] == {"limit": "3"}
    assert [r["idempotency_key"] for r in sandbox.requests(idempotency_key="filter-b")] == [
        "filter-b"
    ]
    assert sandbox.requests(path="/v1/refunds") == []

    with pytest.raises(ControlError) as refused:
        sandbox.requests(status="200")
    assert refused.value.status == 400
    assert refused.value.body["error"]["param"] == "status"


def test_the_log_keeps_only_the_newest_requests(sandbox: SandboxServer) -> None:
    assert sandbox.control("requests")["capacity"] == REQUEST_LOG_SIZE == 10_000
    # A small ring in the running sandbox, so that overflowing it takes five requests.
    sandbox.app[SANDBOX].store.requests = RequestLog(capacity=3)
    for limit in range(1, 6):
        client(sandbox).v1.checkout.sessions.list(params={"limit": limit})

    log = sandbox.control("requests")
    assert [r["params"]["limit"] for r in log["data"]] == ["3", "4", "5"]
    assert (log["recorded"], log["capacity"]) == (5, 3)
