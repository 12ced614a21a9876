"""The versioned HTTP API: one NinjaAPI mounted at /api/v1/, a Router per app."""

from typing import Any

from django.http import HttpRequest
from django.middleware.csrf import get_token
from ninja import NinjaAPI
from ninja.openapi.schema import OpenAPISchema

from djangomart.accounts.addresses_api import router as addresses_router
from djangomart.accounts.me_api import router as me_router
from djangomart.api.csrf import session_csrf_protect
from djangomart.api.errors import register_error_handlers
from djangomart.api.schemas import CsrfOut, error_responses
from djangomart.carts.api import router as carts_router
from djangomart.catalog.api import router as catalog_router
from djangomart.fulfillment.api import router as fulfillment_router
from djangomart.orders.api import router as orders_router
from djangomart.payments.staff_api import router as staff_router


class DjangoMartAPI(NinjaAPI):
    def get_openapi_schema(
        self, *, path_prefix: str | None = None, path_params: dict[str, Any] | None = None
    ) -> OpenAPISchema:
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        for operations in schema["paths"].values():
            for operation in operations.values():
                for parameter in operation.get("parameters", []):
                    parameter["schema"] = _without_null(parameter["schema"])
        return schema


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional parameter is typed `X | None` in Python, `anyOf: [X, null]` in JSON
    Schema; but a query string or header is absent or a string, never JSON null (a client
    generator would send the text "null"), so the schema says X."""
    branches = schema.get("anyOf")
    if not isinstance(branches, list):
        return schema
    kept = [b for b in branches if b != {"type": "null"}]
    if len(kept) != 1 or len(kept) == len(branches):
        return schema
    outer = {k: v for k, v in schema.items() if k != "anyOf"}
    return {**kept[0], **outer}


api = DjangoMartAPI(
    title="DjangoMart API",
    version="1",
    description=(
        "Storefront API. Money is an integer amount in the currency's minor unit plus a "
        'lowercase ISO-4217 code. Errors are `{"code", "message"}` JSON with a stable `code`; '
        "validation errors (422) list each bad input in `details`. Unsafe requests made with "
        "the session cookie need the CSRF token (`GET /api/v1/csrf`) in `X-CSRFToken`; "
        "guests and token clients need none. The staff API (`/api/v1/staff/`, tag `staff`) "
        "takes a staff API token (`Authorization: Bearer`) or a staff user's session.\n\n"
        "**Customer accounts** (signup with email verification, login, logout, password "
        "change and reset, email change) are django-allauth's headless API under "
        "`/_allauth/browser/v1/` (session cookie + CSRF) and `/_allauth/app/v1/` "
        "(`X-Session-Token`), specified in [/_allauth/openapi.html](/_allauth/openapi.html) "
        "([JSON](/_allauth/openapi.json)). Operations here that need a customer accept "
        "either: the session cookie, or the app's `X-Session-Token` header. Limits are per "
        "client: a `429` `rate_limited` answer says in `Retry-After` when to retry."
    ),
    urls_namespace="api-v1",
    docs_url="/docs",
    openapi_url="/openapi.json",
)
register_error_handlers(api)
api.add_decorator(session_csrf_protect, mode="view")
api.add_router("/", catalog_router)
api.add_router("/", orders_router)
api.add_router("/", carts_router)
api.add_router("/", me_router)
api.add_router("/", addresses_router)
api.add_router("/staff/", staff_router)
api.add_router("/staff/", fulfillment_router)


@api.get("/csrf", response={200: CsrfOut, **error_responses()}, tags=["session"])
def csrf_token(request: HttpRequest) -> CsrfOut:
    """The CSRF token for a browser client that uses the session cookie; also sets the
    `csrftoken` cookie."""
    return CsrfOut(csrf_token=get_token(request))
