"""The /v1 REST routes: parse with Params, change state through flows, answer JSON."""

import operator
from typing import Any

from aiohttp import web

from stripe_sandbox import flows, objects
from stripe_sandbox.errors import invalid, no_such
from stripe_sandbox.params import Params
from stripe_sandbox.state import CONTEXT, PARAMS, sandbox_of
from stripe_sandbox.store import StripeObject

routes = web.RouteTableDef()


def params_of(request: web.Request) -> Params:
    return Params(request[PARAMS])


def context_of(request: web.Request) -> flows.Context:
    return request[CONTEXT]


def _found(request: web.Request, kind: str, label: str) -> StripeObject:
    object_id = request.match_info["id"]
    obj = sandbox_of(request).store.get(kind, object_id)
    if obj is None:
        raise no_such(label, object_id)
    return obj


def _paginate(params: Params, items: list[StripeObject], url: str) -> StripeObject:
    """Stripe's cursor pagination over a newest-first list."""
    limit = params.integer("limit", minimum=1, maximum=100) or 10
    starting_after = params.text("starting_after")
    ending_before = params.text("ending_before")
    params.finish()
    ids = [item["id"] for item in items]
    if starting_after:
        if starting_after not in ids:
            raise invalid(f"No such object: '{starting_after}'", param="starting_after")
        items = items[ids.index(starting_after) + 1 :]
        return objects.page(items[:limit], url=url, has_more=len(items) > limit)
    if ending_before:
        if ending_before not in ids:
            raise invalid(f"No such object: '{ending_before}'", param="ending_before")
        items = items[: ids.index(ending_before)]
        return objects.page(items[-limit:], url=url, has_more=len(items) > limit)
    return objects.page(items[:limit], url=url, has_more=len(items) > limit)


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.json_response(obj, status=status)


# -- Checkout Sessions ------------------------------------------------------------------


@routes.post("/v1/checkout/sessions")
async def session_create(request: web.Request) -> web.Response:
    url_base = f"{request.scheme}://{request.host}"
    session = flows.session_create(sandbox_of(request).store, params_of(request), url_base=url_base)
    return _json(session)


@routes.get("/v1/checkout/sessions")
async def session_list(request: web.Request) -> web.Response:
    params = params_of(request)
    intent = params.text("payment_intent")
    sessions = sandbox_of(request).store.all("checkout.session")
    if intent:
        sessions = [s for s in sessions if s["payment_intent"] == intent]
    return _json(_paginate(params, sessions, "/v1/checkout/sessions"))


@routes.get("/v1/checkout/sessions/{id}")
async def session_get(request: web.Request) -> web.Response:
    params_of(request).finish()
    return _json(_found(request, "checkout.session", "checkout.session"))


@routes.post("/v1/checkout/sessions/{id}/expire")
async def session_expire(request: web.Request) -> web.Response:
    params_of(request).finish()
    session = _found(request, "checkout.session", "checkout.session")
    return _json(flows.session_expire(sandbox_of(request).store, session, context_of(request)))


@routes.get("/v1/checkout/sessions/{id}/line_items")
async def session_line_items(request: web.Request) -> web.Response:
    session = _found(request, "checkout.session", "checkout.session")
    items = list(sandbox_of(request).store.private[session["id"]]["line_items"])
    # Line items keep the order they were given in; _paginate expects the list order.
    url = f"/v1/checkout/sessions/{session['id']}/line_items"
    return _json(_paginate(params_of(request), items, url))


# -- Payment Intents, Charges, Disputes -------------------------------------------------


@routes.get("/v1/payment_intents/{id}")
async def payment_intent_get(request: web.Request) -> web.Response:
    params_of(request).finish()
    return _json(_found(request, "payment_intent", "payment_intent"))


@routes.get("/v1/charges/{id}")
async def charge_get(request: web.Request) -> web.Response:
    params_of(request).finish()
    return _json(_found(request, "charge", "charge"))


@routes.get("/v1/disputes/{id}")
async def dispute_get(request: web.Request) -> web.Response:
    params_of(request).finish()
    return _json(_found(request, "dispute", "dispute"))


# -- Refunds ----------------------------------------------------------------------------


@routes.post("/v1/refunds")
async def refund_create(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    refund = flows.refund_create(
        sandbox.store, params_of(request), context_of(request), mode=sandbox.config.refund_mode
    )
    return _json(refund)


@routes.get("/v1/refunds")
async def refund_list(request: web.Request) -> web.Response:
    params = params_of(request)
    charge_id = params.text("charge")
    intent_id = params.text("payment_intent")
    refunds = sandbox_of(request).store.all("refund")
    if charge_id:
        refunds = [r for r in refunds if r["charge"] == charge_id]
    if intent_id:
        refunds = [r for r in refunds if r["payment_intent"] == intent_id]
    return _json(_paginate(params, refunds, "/v1/refunds"))


@routes.get("/v1/refunds/{id}")
async def refund_get(request: web.Request) -> web.Response:
    params_of(request).finish()
    return _json(_found(request, "refund", "refund"))


# -- Events -----------------------------------------------------------------------------


_COMPARISONS = {"gte": operator.ge, "gt": operator.gt, "lte": operator.le, "lt": operator.lt}


# Stripe's limit on `types` in one listing.
MAX_EVENT_TYPES = 20


@routes.get("/v1/events")
async def event_list(request: web.Request) -> web.Response:
    params = params_of(request)
    sandbox = sandbox_of(request)
    events = sandbox.store.events_retained()
    event_type = params.text("type")
    if event_type:
        if event_type.endswith(".*"):
            events = [e for e in events if e["type"].startswith(event_type[:-1])]
        else:
            events = [e for e in events if e["type"] == event_type]
    wanted = set(params.strings("types"))
    if len(wanted) > MAX_EVENT_TYPES:
        raise invalid(f"You can filter on at most {MAX_EVENT_TYPES} event types.", param="types")
    if wanted:
        events = [e for e in events if e["type"] in wanted]
    delivered = params.boolean("delivery_success")
    if delivered is not None:
        success = sandbox.dispatcher.delivery_success
        events = [e for e in events if success(e["id"]) is delivered]
    created = params.raw("created")
    if isinstance(created, str):
        exact = Params({"created": created}).integer("created")
        events = [e for e in events if e["created"] == exact]
    elif created is not None:
        bounds = Params(created, "created")
        for op, test in _COMPARISONS.items():
            bound = bounds.integer(op)
            if bound is not None:
                events = [e for e in events if test(e["created"], bound)]
        bounds.finish()
    return _json(_paginate(params, events, "/v1/events"))


@routes.get("/v1/events/{id}")
async def event_get(request: web.Request) -> web.Response:
    params_of(request).finish()
    return _json(_found(request, "event", "event"))
