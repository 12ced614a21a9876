"""The cart API (`/api/v1/carts`, `/api/v1/me/cart`; docs/carts.md)."""

from typing import Annotated, Any, TypeVar
from uuid import UUID

from django.conf import settings
from django.http import HttpRequest
from ninja import HeaderEx, P, Router, Status

from djangomart.accounts.addresses import address_snapshot_for_checkout
from djangomart.accounts.customers import CUSTOMER_AUTH, customer_required, request_customer
from djangomart.api.schemas import error_responses
from djangomart.api.types import NulFree
from djangomart.carts import services
from djangomart.carts.models import Cart, CartStatus
from djangomart.carts.schemas import (
    CartCheckoutIn,
    CartCreatedOut,
    CartLineIn,
    CartLineOut,
    CartLineProblemsOut,
    CartLineQuantityIn,
    CartOut,
    CartProblemOut,
)
from djangomart.carts.selectors import cart_get_for_client, cart_view
from djangomart.core.ratelimit import rate_limit_take
from djangomart.orders.api import (
    CHECKOUT_RESPONSES,
    HEADER_TOKEN_PATTERN,
    IDEMPOTENCY_KEY_HELP,
    checkout_out,
)
from djangomart.orders.schemas import CheckoutOut

router = Router(tags=["carts"])
OutT = TypeVar("OutT", bound=CartOut)

CartToken = Annotated[str, NulFree]
CART_TOKEN_HELP = (
    "A guest cart's `token` from `POST /api/v1/carts`. Not needed for a logged-in "  # noqa: S105
    "customer's own cart."
)
TokenHeader = HeaderEx[
    CartToken | None, P(alias="X-Cart-Token", max_length=128, description=CART_TOKEN_HELP)
]
NOT_FOUND = {404: {"description": "`not_found`: no such cart for this token or customer."}}
WRITE_RESPONSES = {
    404: {
        "description": "`not_found`: no such cart for this token or customer; `unknown_sku` "
        "(add: unknown or no longer sold); `line_not_found` (the cart has no such line)."
    },
    409: {
        "description": "`quantity_limit`: the line would exceed 100 units (`quantity` is the "
        "line's now); `cart_full`: 50 lines; `cart_closed`: merged or closed; "
        "`cart_checked_out`: its order is paid or its payment is processing."
    },
    502: {
        "description": "The cart's pending order had to be canceled first and Stripe could not "
        "be reached; nothing changed."
    },
}
_CHECKOUT_409 = CHECKOUT_RESPONSES[409]
assert isinstance(_CHECKOUT_409, dict)
CART_CHECKOUT_RESPONSES = {
    **CHECKOUT_RESPONSES,
    404: {"description": "`not_found` (the cart); `address_not_found` (`address_id`)."},
    409: {
        "description": "`cart_empty`; `cart_has_problems` (the lines' `problems`, as in the "
        "cart); `cart_closed`; `cart_checked_out` (`order_id`: paid); `cart_changed` (the "
        "lines changed during the checkout); and the answers of `POST /api/v1/checkout`: "
        + str(_CHECKOUT_409["description"])
    },
}


def _cart_out(cart: Cart, schema: type[OutT] = CartOut, **extra: Any) -> OutT:  # type: ignore[assignment]
    """The cart as its client sees it (`schema` CartOut, or a subclass with `extra`)."""
    view = cart_view(cart)
    return schema(
        id=cart.id,
        status=CartStatus(cart.status),
        lines=[
            CartLineOut(
                sku=v.sku,
                name=f"{v.line.variant.product.name} {v.line.variant.label}".strip(),
                quantity=v.line.quantity,
                unit_price=v.unit_price,
                line_total=v.line_total,
                available=v.available,
                problems=[CartProblemOut(**p) for p in v.problems],
            )
            for v in view.lines
        ],
        subtotal=view.subtotal,
        currency=view.currency,
        problems=[
            CartLineProblemsOut(sku=p["sku"], problems=[CartProblemOut(**x) for x in p["problems"]])
            for p in view.problems
        ],
        can_checkout=view.can_checkout,
        order_id=cart.order_id,
        created_at=cart.created_at,
        updated_at=cart.updated_at,
        **extra,
    )


def _write_limit(request: HttpRequest) -> None:
    customer = request_customer(request)
    rate_limit_take(
        "cart_write",
        settings.RATE_LIMIT_CART_WRITE,
        request,
        customer.pk if customer is not None else None,
    )


@router.post("/carts", response={201: CartCreatedOut, **error_responses(401, 403, 429)})
def cart_create(request: HttpRequest) -> Status[CartCreatedOut]:
    """A new guest cart with its `token` (shown once), or, for a logged-in customer, their
    open cart (created if none) with `token: null`."""
    _write_limit(request)
    cart, token = services.cart_create(customer=request_customer(request))
    return Status(201, _cart_out(cart, CartCreatedOut, token=token))


@router.get("/me/cart", auth=CUSTOMER_AUTH, response={200: CartOut, **error_responses(401)})
def my_cart(request: HttpRequest) -> CartOut:
    """The logged-in customer's open cart, created if they have none (after a paid
    checkout, a new one)."""
    return _cart_out(services.cart_of_customer(customer=customer_required(request)))


@router.get(
    "/carts/{cart_id}",
    response={200: CartOut, **error_responses(401, 404, 422)},
    openapi_extra={"responses": NOT_FOUND},
)
def cart_detail(request: HttpRequest, cart_id: UUID, x_cart_token: TokenHeader = None) -> CartOut:
    """The cart against the catalog now: current prices and availability, line totals,
    subtotal, and each line's `problems`."""
    cart = cart_get_for_client(
        cart_id=cart_id, token=x_cart_token, customer=request_customer(request)
    )
    return _cart_out(services.cart_refresh(cart))


@router.post(
    "/carts/{cart_id}/lines",
    response={200: CartOut, **error_responses(401, 403, 404, 409, 422, 429, 502)},
    openapi_extra={"responses": WRITE_RESPONSES},
)
def cart_line_add(
    request: HttpRequest, cart_id: UUID, body: CartLineIn, x_cart_token: TokenHeader = None
) -> CartOut:
    """Adds units of a SKU (a SKU already in the cart grows its line). Answers the cart."""
    _write_limit(request)
    return _cart_out(
        services.cart_line_add(
            cart_id=cart_id,
            token=x_cart_token,
            customer=request_customer(request),
            sku=body.sku,
            quantity=body.quantity,
        )
    )


@router.patch(
    "/carts/{cart_id}/lines/{sku}",
    response={200: CartOut, **error_responses(401, 403, 404, 409, 422, 429, 502)},
    openapi_extra={"responses": WRITE_RESPONSES},
)
def cart_line_set(
    request: HttpRequest,
    cart_id: UUID,
    sku: str,
    body: CartLineQuantityIn,
    x_cart_token: TokenHeader = None,
) -> CartOut:
    """Sets the line's quantity (0 removes it); the line takes the current price (how a
    customer accepts a `price_changed`). Answers the cart."""
    _write_limit(request)
    return _cart_out(
        services.cart_line_set(
            cart_id=cart_id,
            token=x_cart_token,
            customer=request_customer(request),
            sku=sku,
            quantity=body.quantity,
        )
    )


@router.delete(
    "/carts/{cart_id}/lines/{sku}",
    response={200: CartOut, **error_responses(401, 403, 404, 409, 422, 429, 502)},
    openapi_extra={"responses": WRITE_RESPONSES},
)
def cart_line_remove(
    request: HttpRequest, cart_id: UUID, sku: str, x_cart_token: TokenHeader = None
) -> CartOut:
    """Removes the line. Answers the cart."""
    _write_limit(request)
    return _cart_out(
        services.cart_line_remove(
            cart_id=cart_id, token=x_cart_token, customer=request_customer(request), sku=sku
        )
    )


@router.post(
    "/carts/{cart_id}/checkout",
    response={201: CheckoutOut, **error_responses(401, 403, 404, 409, 422, 429, 502)},
    openapi_extra={"responses": CART_CHECKOUT_RESPONSES},
)
def cart_checkout(
    request: HttpRequest,
    cart_id: UUID,
    body: CartCheckoutIn,
    x_cart_token: TokenHeader = None,
    idempotency_key: HeaderEx[
        str | None,
        P(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            pattern=HEADER_TOKEN_PATTERN,
            description="Accepted as on `POST /api/v1/checkout`; a cart's checkout is "
            "idempotent per cart whatever the key: " + IDEMPOTENCY_KEY_HELP,
        ),
    ] = None,
) -> Status[CheckoutOut]:
    """Starts the payment engine's checkout from the cart and answers exactly like
    `POST /api/v1/checkout`. While the cart's order is pending and its lines unchanged, a
    repeat returns the same order and Checkout Session."""
    customer = request_customer(request)
    cart = cart_get_for_client(cart_id=cart_id, token=x_cart_token, customer=customer)
    rate_limit_take(
        "checkout",
        settings.RATE_LIMIT_CHECKOUT,
        request,
        customer.pk if customer is not None else None,
    )
    shipping_address = address_snapshot_for_checkout(
        customer=customer, address_id=body.address_id, address=body.address
    )
    result = services.cart_checkout(
        cart_id=cart.pk,
        token=x_cart_token,
        customer=customer,
        email=body.email,
        success_url=body.success_url,
        cancel_url=body.cancel_url,
        shipping_address=shipping_address,
    )
    return Status(201, checkout_out(result))
