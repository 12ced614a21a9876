"""/_sandbox/: what Stripe's dashboard, a customer's browser, a bank or a card network
would do, scriptable for tests and benchmarks. JSON in, JSON out, no auth (the
sandbox binds to 127.0.0.1)."""

import json
from typing import Any

from aiohttp import web

from stripe_sandbox import flows
from stripe_sandbox.errors import invalid, no_such
from stripe_sandbox.state import sandbox_of
from stripe_sandbox.store import StripeObject

routes = web.RouteTableDef()


async def body_of(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = json.loads(await request.read() or b"{}")
    except json.JSONDecodeError:
        raise invalid("The body must be a JSON object.") from None
    if not isinstance(body, dict):
        raise invalid("The body must be a JSON object.")
    return body


def found(request: web.Request, kind: str) -> StripeObject:
    object_id = request.match_info["id"]
    obj = sandbox_of(request).store.get(kind, object_id)
    if obj is None:
        raise no_such(kind, object_id)
    return obj


def ctx() -> flows.Context:
    return flows.Context(request_id=None, idempotency_key=None)


@routes.get("/_sandbox/config")
async def config_get(request: web.Request) -> web.Response:
    return web.json_response(sandbox_of(request).config.as_dict())


@routes.post("/_sandbox/config")
async def config_set(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    try:
        sandbox.reconfigure(await body_of(request))
    except ValueError as exc:
        raise invalid(str(exc)) from None
    return web.json_response(sandbox.config.as_dict())


@routes.get("/_sandbox/webhook_endpoints")
async def endpoints_list(request: web.Request) -> web.Response:
    return web.json_response([e.as_dict() for e in sandbox_of(request).dispatcher.endpoints])


@routes.post("/_sandbox/webhook_endpoints")
async def endpoints_add(request: web.Request) -> web.Response:
    body = await body_of(request)
    url, secret = body.get("url"), body.get("secret")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise invalid("url must be an http(s) URL", param="url")
    if not isinstance(secret, str) or not secret.startswith("whsec_"):
        raise invalid("secret must start with whsec_", param="secret")
    endpoint = sandbox_of(request).dispatcher.add_endpoint(url, secret)
    return web.json_response(endpoint.as_dict(), status=201)


def _result(outcome: str, session: StripeObject, request: web.Request) -> web.Response:
    store = sandbox_of(request).store
    intent = store.get("payment_intent", session["payment_intent"] or "")
    return web.json_response(
        {"outcome": outcome, "checkout_session": session, "payment_intent": intent}
    )


@routes.post("/_sandbox/checkout/sessions/{id}/pay")
async def session_pay(request: web.Request) -> web.Response:
    """{"card": "4242424242424242"} or {"method": "delayed"}; optional "email"."""
    body = await body_of(request)
    session = found(request, "checkout.session")
    method = body.get("method", "card")
    if method not in ("card", "delayed"):
        raise invalid('method must be "card" or "delayed"', param="method")
    outcome = flows.session_pay(
        sandbox_of(request).store,
        session,
        ctx(),
        card=body.get("card"),
        delayed=method == "delayed",
        email=body.get("email"),
    )
    return _result(outcome, session, request)


@routes.post("/_sandbox/checkout/sessions/{id}/authenticate")
async def session_authenticate(request: web.Request) -> web.Response:
    """3-D Secure: {"result": "approve"} or {"result": "fail"}."""
    body = await body_of(request)
    result = body.get("result")
    if result not in ("approve", "fail"):
        raise invalid('result must be "approve" or "fail"', param="result")
    session = found(request, "checkout.session")
    outcome = flows.session_authenticate(
        sandbox_of(request).store, session, ctx(), approve=result == "approve"
    )
    return _result(outcome, session, request)


@routes.post("/_sandbox/checkout/sessions/{id}/delayed_payment")
async def session_delayed_payment(request: web.Request) -> web.Response:
    """The bank's answer for a delayed method: {"result": "succeeded"} or {"result": "failed"}."""
    body = await body_of(request)
    result = body.get("result")
    if result not in ("succeeded", "failed"):
        raise invalid('result must be "succeeded" or "failed"', param="result")
    session = found(request, "checkout.session")
    outcome = flows.session_settle_delayed(
        sandbox_of(request).store, session, ctx(), succeeded=result == "succeeded"
    )
    return _result(outcome, session, request)


@routes.get("/_sandbox/clock")
async def clock_get(request: web.Request) -> web.Response:
    store = sandbox_of(request).store
    return web.json_response({"now": store.now(), "offset": store.clock_offset})


@routes.post("/_sandbox/clock/advance")
async def clock_advance(request: web.Request) -> web.Response:
    """{"seconds": 90000}: moves the clock forward; sessions past expires_at expire now."""
    body = await body_of(request)
    seconds = body.get("seconds")
    if not isinstance(seconds, int) or seconds < 0:
        raise invalid("seconds must be a non-negative integer", param="seconds")
    store = sandbox_of(request).store
    store.clock_offset += seconds
    expired = flows.sessions_expire_due(store)
    return web.json_response({"now": store.now(), "expired": [s["id"] for s in expired]})


@routes.post("/_sandbox/charges/{id}/dispute")
async def dispute_open(request: web.Request) -> web.Response:
    """{"amount"?: int, "reason"?: "fraudulent" | ..., "is_charge_refundable"?: bool}"""
    body = await body_of(request)
    reason = body.get("reason", "fraudulent")
    if reason not in flows.DISPUTE_REASONS:
        raise invalid(f"reason must be one of {', '.join(flows.DISPUTE_REASONS)}", param="reason")
    amount = body.get("amount")
    if amount is not None and not isinstance(amount, int):
        raise invalid("amount must be an integer", param="amount")
    refundable = body.get("is_charge_refundable", False)
    if not isinstance(refundable, bool):
        raise invalid("is_charge_refundable must be a boolean", param="is_charge_refundable")
    dispute = flows.dispute_open(
        sandbox_of(request).store,
        found(request, "charge"),
        ctx(),
        amount=amount,
        reason=reason,
        is_charge_refundable=refundable,
    )
    return web.json_response(dispute)


@routes.post("/_sandbox/disputes/{id}/update")
async def dispute_update(request: web.Request) -> web.Response:
    """{"status"?: "under_review", "evidence"?: {"uncategorized_text": "..."}}"""
    body = await body_of(request)
    status = body.get("status", "under_review")
    if status not in (
        "needs_response",
        "under_review",
        "warning_needs_response",
        "warning_under_review",
    ):
        raise invalid("status must be an open dispute status", param="status")
    evidence = body.get("evidence") or {}
    if not isinstance(evidence, dict) or not all(isinstance(v, str) for v in evidence.values()):
        raise invalid("evidence must be an object of strings", param="evidence")
    dispute = flows.dispute_update(
        sandbox_of(request).store,
        found(request, "dispute"),
        ctx(),
        status=status,
        evidence=evidence,
    )
    return web.json_response(dispute)


@routes.post("/_sandbox/disputes/{id}/close")
async def dispute_close(request: web.Request) -> web.Response:
    """{"outcome": "won" | "lost"}"""
    body = await body_of(request)
    outcome = body.get("outcome")
    if outcome not in ("won", "lost"):
        raise invalid('outcome must be "won" or "lost"', param="outcome")
    dispute = flows.dispute_close(
        sandbox_of(request).store, found(request, "dispute"), ctx(), won=outcome == "won"
    )
    return web.json_response(dispute)


@routes.post("/_sandbox/refunds/{id}/succeed")
async def refund_succeed(request: web.Request) -> web.Response:
    refund = flows.refund_settle(
        sandbox_of(request).store, found(request, "refund"), ctx(), succeeded=True
    )
    return web.json_response(refund)


@routes.post("/_sandbox/refunds/{id}/fail")
async def refund_fail(request: web.Request) -> web.Response:
    refund = flows.refund_settle(
        sandbox_of(request).store, found(request, "refund"), ctx(), succeeded=False
    )
    return web.json_response(refund)


@routes.get("/_sandbox/deliveries")
async def deliveries(request: web.Request) -> web.Response:
    """The delivery log, oldest first; filter with ?event=evt_... or ?type=..."""
    log = list(sandbox_of(request).dispatcher.log)
    if "event" in request.query:
        log = [d for d in log if d["event"] == request.query["event"]]
    if "type" in request.query:
        log = [d for d in log if d["type"] == request.query["type"]]
    return web.json_response({"data": log, "pending": sandbox_of(request).dispatcher.pending})


REQUEST_FILTERS = ("method", "path", "idempotency_key")


@routes.get("/_sandbox/requests")
async def requests_log(request: web.Request) -> web.Response:
    """The API request log, in the order received; filter with ?method=POST,
    ?path=/v1/..., ?idempotency_key=..."""
    for name in request.query:
        if name not in REQUEST_FILTERS:
            raise invalid(
                f"Unknown filter: {name} (one of {', '.join(REQUEST_FILTERS)})", param=name
            )
    log = sandbox_of(request).store.requests
    entries = list(log.entries)
    if "method" in request.query:
        entries = [e for e in entries if e.method == request.query["method"].upper()]
    if "path" in request.query:
        entries = [e for e in entries if e.path == request.query["path"]]
    if "idempotency_key" in request.query:
        entries = [e for e in entries if e.idempotency_key == request.query["idempotency_key"]]
    return web.json_response(
        {
            "data": [e.as_dict() for e in entries],
            "recorded": log.recorded,
            "capacity": log.entries.maxlen,
        }
    )


@routes.post("/_sandbox/events/{id}/resend")
async def event_resend(request: web.Request) -> web.Response:
    event = found(request, "event")
    sandbox_of(request).dispatcher.on_event(event)
    return web.json_response({"resent": event["id"]})


@routes.post("/_sandbox/wait_idle")
async def wait_idle(request: web.Request) -> web.Response:
    """Waits until no delivery is pending (or {"timeout": seconds}, default 10, passes)."""
    body = await body_of(request)
    timeout = body.get("timeout", 10)
    if not isinstance(timeout, int | float) or timeout < 0:
        raise invalid("timeout must be a number of seconds", param="timeout")
    dispatcher = sandbox_of(request).dispatcher
    idle = await dispatcher.wait_idle(float(timeout))
    return web.json_response({"idle": idle, "pending": dispatcher.pending})
