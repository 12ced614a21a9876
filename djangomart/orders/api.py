from typing import Annotated
from uuid import UUID

from django.conf import settings
from django.http import HttpRequest
from ninja import Field, HeaderEx, P, Router, Status

from djangomart.accounts.addresses import address_snapshot_for_checkout
from djangomart.accounts.customers import request_customer
from djangomart.api.schemas import error_responses
from djangomart.api.types import NulFree
from djangomart.core.ratelimit import rate_limit_take
from djangomart.orders.models import Order
from djangomart.orders.public import order_out
from djangomart.orders.ratelimit import sync_slot_take
from djangomart.orders.schemas import CheckoutIn, CheckoutOut, OrderOut
from djangomart.orders.selectors import order_for_api, order_get_for_client
from djangomart.payments import checkout
from djangomart.payments.checkout import GUEST_IDEMPOTENCY_KEY_MIN_LENGTH

router = Router(tags=["orders"])

# Printable ASCII, as HTTP headers carry it (and never a NUL, which PostgreSQL refuses).
HEADER_TOKEN_PATTERN = r"^[\x21-\x7e]+$"  # noqa: S105 (a pattern, not a password)
OrderToken = Annotated[str, NulFree]
# The schema states a guest's minimum, which the service checks: a customer's may be shorter.
IdempotencyKey = Annotated[
    str, Field(json_schema_extra={"minLength": GUEST_IDEMPOTENCY_KEY_MIN_LENGTH})
]
IDEMPOTENCY_KEY_HELP = (
    "Makes retries of this request return the same order and Checkout Session for 24 hours "
    "(then the key starts a new order). A guest's key must have at least 16 characters and "
    "is a secret: whoever sends it again gets the order with its access_token, so use a "
    "random value (a UUID4). A logged-in customer's keys are their own (the same key from "
    "another customer is another order) and may be shorter."
)


def checkout_out(result: checkout.CheckoutResult) -> CheckoutOut:
    """The answer of a checkout, direct or from a cart (carts.api): the same shape."""
    return CheckoutOut(
        order=order_out(order_for_api(result.order)),
        access_token=result.order.access_token,
        checkout_url=result.checkout_url,
        checkout_session_id=result.checkout_session_id,
    )


# What each error status of checkout and sync means (docs/payments.md, "Talking to
# Stripe"); in the OpenAPI schema so that generated clients can branch on it.
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying (with checkout_in_progress).",
        "schema": {"type": "integer"},
    }
}
_PROVIDER_502 = (
    "The payment step failed at Stripe; the order (`id`, `access_token`) was canceled and "
    "its stock released. `payment_provider_unavailable`: Stripe could not be reached, "
    "timed out or failed (try again later). `payment_provider_rejected`: Stripe refused "
    "the request (`provider_code`, e.g. `amount_too_small`); the same checkout will fail again, "
    "and a retry with the same Idempotency-Key gets this answer again."
)
CHECKOUT_RESPONSES = {
    404: {"description": "`unknown_sku`; `address_not_found` (`address_id`)."},
    409: {
        "description": (
            "`out_of_stock`; `idempotency_key_reused` (the key was used with another body); "
            "`checkout_in_progress`: an earlier request with this Idempotency-Key is still "
            "creating the Checkout Session; nothing was canceled, retry after `Retry-After` "
            "seconds with the same key and body. `order_closed`: a retry (same key) of an "
            "order that ended unpaid (`order_status`: expired, canceled, failed), with its "
            "`id` and `access_token`; start a new checkout with a new key."
        ),
        "headers": _RETRY_AFTER,
    },
    422: {"description": "`validation_error`."},
    502: {"description": _PROVIDER_502},
}
SYNC_RESPONSES = {
    404: {"description": "`not_found`: no such order for this token or customer."},
    409: {
        "description": (
            "`no_checkout_session`: the order has none yet; `checkout_session_unknown`: "
            "Stripe does not know the order's Checkout Session (nothing changed)."
        )
    },
    502: {
        "description": (
            "`payment_provider_unavailable`: Stripe could not be reached (try again later); "
            "`payment_provider_rejected`: Stripe refused to show the session. The order is "
            "unchanged."
        )
    },
}


@router.post(
    "/checkout",
    response={201: CheckoutOut, **error_responses(401, 403, 404, 409, 422, 429, 502)},
    openapi_extra={"responses": CHECKOUT_RESPONSES},
)
def checkout_create(
    request: HttpRequest,
    body: CheckoutIn,
    idempotency_key: HeaderEx[
        IdempotencyKey | None,
        P(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            pattern=HEADER_TOKEN_PATTERN,
            description=IDEMPOTENCY_KEY_HELP,
        ),
    ] = None,
) -> Status[CheckoutOut]:
    """Creates an order from database prices and its Stripe Checkout Session. Send an
    `Idempotency-Key` header to make retries return the same order and session."""
    customer = request_customer(request)
    customer_id = customer.pk if customer is not None else None
    rate_limit_take("checkout", settings.RATE_LIMIT_CHECKOUT, request, customer_id)
    shipping_address = address_snapshot_for_checkout(
        customer=customer, address_id=body.address_id, address=body.address
    )
    result = checkout.checkout_create(
        email=body.email,
        lines=[checkout.LineWanted(sku=ln.sku, quantity=ln.quantity) for ln in body.lines],
        success_url=body.success_url,
        cancel_url=body.cancel_url,
        idempotency_key=idempotency_key,
        customer_id=customer_id,
        shipping_address=shipping_address,
    )
    return Status(201, checkout_out(result))


ORDER_TOKEN_HELP = "The guest's `access_token` from the checkout answer."  # noqa: S105


@router.get("/orders/{order_id}", response={200: OrderOut, **error_responses(401, 404, 422)})
def order_detail(
    request: HttpRequest,
    order_id: UUID,
    x_order_token: HeaderEx[
        OrderToken | None,
        P(alias="X-Order-Token", max_length=128, description=ORDER_TOKEN_HELP),
    ] = None,
) -> OrderOut:
    return order_out(
        order_get_for_client(
            order_id=order_id, token=x_order_token, customer=request_customer(request)
        )
    )


@router.post(
    "/orders/{order_id}/sync",
    response={200: OrderOut, **error_responses(401, 403, 404, 409, 422, 429, 502)},
    openapi_extra={"responses": SYNC_RESPONSES},
)
def order_sync(
    request: HttpRequest,
    order_id: UUID,
    x_order_token: HeaderEx[
        OrderToken | None,
        P(alias="X-Order-Token", max_length=128, description=ORDER_TOKEN_HELP),
    ] = None,
) -> OrderOut:
    """Asks Stripe for the order's Checkout Session now and applies it with the function the
    webhook uses, for success pages that want an answer before the webhook arrives.
    Stripe is asked at most once a second per order; a request within that second gets
    the order as it stands, so polling is never refused."""
    customer = request_customer(request)
    order = order_get_for_client(order_id=order_id, token=x_order_token, customer=customer)
    rate_limit_take(
        "order_sync",
        settings.RATE_LIMIT_ORDER_SYNC,
        request,
        customer.pk if customer is not None else None,
    )
    if sync_slot_take(order_id=order.id):
        order = checkout.order_sync(order_id=order.id)
    return order_out(order_for_api(Order.objects.get(pk=order.pk)))
