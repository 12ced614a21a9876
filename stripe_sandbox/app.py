"""The aiohttp application: Stripe's API conventions (auth, idempotency, errors) as
middleware around the routes, plus the injected API failures."""

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from stripe_sandbox import api, control, flows, forms, page
from stripe_sandbox.config import Config
from stripe_sandbox.errors import StripeError
from stripe_sandbox.state import CONTEXT, PARAMS, SANDBOX, Sandbox, sandbox_of
from stripe_sandbox.store import IdempotentResult, RequestRecord, Store, new_id
from stripe_sandbox.webhooks import Dispatcher

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

IDEMPOTENCY_TTL = 24 * 60 * 60


def _api_key(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    key = header.removeprefix("Bearer ").strip()
    if not key:
        raise StripeError(
            401,
            "You did not provide an API key. You need to provide your API key "
            "in the Authorization header, using Bearer auth.",
        )
    if not key.startswith("sk_test_"):
        shown = key[:8] + "*" * max(0, len(key) - 12) + key[-4:]
        raise StripeError(401, f"Invalid API Key provided: {shown}", code="api_key_invalid")
    return key


@web.middleware
async def stripe_api(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/v1/"):
        return await _api_request(request, handler)
    try:
        return await handler(request)
    except StripeError as exc:
        return exc.response()


async def _api_request(request: web.Request, handler: Handler) -> web.StreamResponse:
    sandbox = sandbox_of(request)
    config = sandbox.config
    request_id = new_id("req", 14)
    idempotency_key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
    entry = RequestRecord(request_id, request.method, request.path, idempotency_key)
    # Logged on arrival, so that a test can see a request that is still executing.
    sandbox.store.requests.record(entry)
    response = await _api_answer(request, handler, entry)
    # Replays and injected 500s are never dropped (README). Drawn before the answer is
    # logged, so that the log says which answers were lost.
    dropped = (
        not (entry.replayed or entry.injected_error)
        and bool(config.api_timeout_rate)
        and sandbox.rng.random() < config.api_timeout_rate
    )
    entry.finish(response.status, dropped=dropped)
    if dropped:
        # Processed, but the answer never arrives: the client must retry with the same key.
        await asyncio.sleep(config.api_timeout_seconds)
        if request.transport is not None:
            request.transport.abort()
    return response


async def _api_answer(
    request: web.Request, handler: Handler, entry: RequestRecord
) -> web.StreamResponse:
    """Everything a /v1 request gets up to its answer: auth, idempotency, the injected
    latency and 500s, the route."""
    sandbox = sandbox_of(request)
    config = sandbox.config
    store = sandbox.store
    request_id = entry.request_id
    idempotency_key = entry.idempotency_key
    # Set once this request holds its key: only then is its answer stored under the key.
    store_key: tuple[str, str] | None = None
    fingerprint: tuple[str, str, str] = ("", "", "")
    response: web.StreamResponse
    try:
        api_key = _api_key(request)
        raw = await request.text() if request.method == "POST" else request.query_string
        params = forms.decode(raw)
        entry.params_json = json.dumps(params, sort_keys=True)
        replay: web.Response | None = None
        if idempotency_key:
            key = (api_key, idempotency_key)
            fingerprint = (request.method, request.path, entry.params_json)
            replay = _idempotent_replay(store, key, fingerprint, idempotency_key)
            if replay is None:
                if key in store.in_flight:
                    # As on Stripe: the first request with this key is still executing.
                    # Nothing is stored, so a retry after it finished gets its answer.
                    raise StripeError(
                        409,
                        "There is currently another in-progress request using this "
                        f"Idempotent Key (that probably means you submitted twice, and the "
                        f"other request is still going through): {idempotency_key}. "
                        "Please try again later.",
                        code="idempotency_key_in_use",
                    )
                store.in_flight.add(key)
                store_key = key
        latency = sandbox.rng.uniform(config.api_latency_min, config.api_latency_max)
        if latency > 0:
            await asyncio.sleep(latency)
        if config.api_error_rate and sandbox.rng.random() < config.api_error_rate:
            # Failed before processing: not stored, the key is free again.
            _release(store, store_key)
            store_key = None
            error = StripeError(
                500, "An unknown error occurred (injected by the sandbox).", type="api_error"
            )
            response = error.response()
            response.headers["Stripe-Should-Retry"] = "true"
            response.headers["Request-Id"] = request_id
            entry.injected_error = True
            return response
        if replay is not None:
            entry.replayed = True
            return replay
        request[PARAMS] = params
        request[CONTEXT] = flows.Context(request_id=request_id, idempotency_key=idempotency_key)
        try:
            response = await handler(request)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
            raise StripeError(
                404,
                f"Unrecognized request URL ({request.method}: {request.path}). Please see "
                "https://stripe.com/docs or we can help at https://support.stripe.com/.",
            ) from None
    except StripeError as exc:
        entry.error = {"type": exc.body["type"], "code": exc.body.get("code")}
        response = exc.response()
    except BaseException:
        _release(store, store_key)
        raise
    response.headers["Request-Id"] = request_id
    if store_key is not None:
        if isinstance(response, web.Response) and response.body is not None:
            body = response.body if isinstance(response.body, bytes) else bytes(response.body)  # type: ignore[arg-type]
            store.idempotency[store_key] = IdempotentResult(
                fingerprint=fingerprint, status=response.status, body=body, created=store.now()
            )
        _release(store, store_key)
    return response


def _release(store: Store, key: tuple[str, str] | None) -> None:
    if key is not None:
        store.in_flight.discard(key)


def _idempotent_replay(
    store: Store, key: tuple[str, str], fingerprint: tuple[str, str, str], idempotency_key: str
) -> web.Response | None:
    stored = store.idempotency.get(key)
    if stored is None or stored.created + IDEMPOTENCY_TTL < store.now():
        return None
    if stored.fingerprint != fingerprint:
        raise StripeError(
            400,
            "Keys for idempotent requests can only be used with the same parameters they were "
            f"first used with. Try using a key other than '{idempotency_key}' if you meant to "
            "execute a different request.",
            type="idempotency_error",
        )
    response = web.Response(body=stored.body, status=stored.status, content_type="application/json")
    response.headers["Idempotent-Replayed"] = "true"
    return response


async def _expire_sessions(app: web.Application) -> AsyncIterator[None]:
    """Sessions expire on their own, as on Stripe, checked every second."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(1)
            flows.sessions_expire_due(app[SANDBOX].store)

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _dispatcher(app: web.Application) -> AsyncIterator[None]:
    dispatcher = app[SANDBOX].dispatcher
    await dispatcher.start()
    yield
    await dispatcher.close()


async def _not_found(request: web.Request) -> web.Response:
    raise web.HTTPNotFound()


def create_app(
    config: Config | None = None, endpoints: list[tuple[str, str]] | None = None
) -> web.Application:
    config = config or Config()
    config.check()
    store = Store()
    dispatcher = Dispatcher(config)
    sandbox = Sandbox(config=config, store=store, dispatcher=dispatcher)
    if config.seed is not None:
        sandbox.rng.seed(config.seed)
    store.listeners.append(dispatcher.on_event)
    for url, secret in endpoints or []:
        dispatcher.add_endpoint(url, secret)
    app = web.Application(middlewares=[stripe_api], client_max_size=1024 * 1024)
    app[SANDBOX] = sandbox
    app.add_routes(api.routes)
    app.add_routes(control.routes)
    app.add_routes(page.routes)
    # Unknown /v1 routes still pass through the middleware, which answers Stripe's 404.
    app.router.add_route("*", "/v1/{tail:.*}", _not_found)
    app.cleanup_ctx.append(_dispatcher)
    app.cleanup_ctx.append(_expire_sessions)
    return app
