"""The versioned HTTP API: one NinjaAPI mounted at /api/v1/, a Router per app."""

from ninja import NinjaAPI

from djangomart.api.errors import register_error_handlers
from djangomart.catalog.api import router as catalog_router
from djangomart.orders.api import router as orders_router

api = NinjaAPI(
    title="DjangoMart API",
    version="1",
    description=(
        "Storefront API. Money is an integer amount in the currency's minor unit plus a "
        'lowercase ISO-4217 code. Errors are `{"code", "message"}` JSON with a stable `code`.'
    ),
    urls_namespace="api-v1",
    docs_url="/docs",
    openapi_url="/openapi.json",
)
register_error_handlers(api)
api.add_router("/", catalog_router)
api.add_router("/", orders_router)
