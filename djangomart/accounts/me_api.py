"""The logged-in customer (`/api/v1/me`) and their order history (`/api/v1/me/orders`),
docs/customers.md. Every operation needs a customer (`CUSTOMER_AUTH`): none is a 401
`not_authenticated`, a stale X-Session-Token a 401 `session_expired`; someone else's
order id is a 404 `not_found`, exactly like an unknown one."""

from uuid import UUID

from allauth.account.models import EmailAddress
from django.contrib.auth.models import User
from django.http import HttpRequest
from ninja import Query, Router, Status

from djangomart.accounts.customers import CUSTOMER_AUTH, customer_required
from djangomart.accounts.deletion import account_delete
from djangomart.accounts.schemas import (
    MeDeleteIn,
    MeOrderListParams,
    MeOrderOut,
    MeOrderPageOut,
    MeOut,
)
from djangomart.api.schemas import error_responses
from djangomart.orders.public import order_out
from djangomart.orders.schemas import OrderOut
from djangomart.orders.selectors import order_get_for_client, order_page_for_customer

router = Router(tags=["me"], auth=CUSTOMER_AUTH)

DELETE_RESPONSES = {
    204: {"description": "Deleted: personal data erased, every session and token ended."},
    403: {
        "description": (
            "`reauthentication_failed`: the password is wrong or missing (nothing changed); "
            "`staff_account`: staff accounts are managed in the admin."
        )
    },
    429: {"description": "`rate_limited`: too many password tries; see `Retry-After`."},
}


@router.get("/me", response={200: MeOut, **error_responses(401)})
def me_detail(request: HttpRequest) -> MeOut:
    """The logged-in customer."""
    customer = customer_required(request)
    return MeOut(
        id=customer.pk,
        email=customer.email,
        email_verified=_email_verified(customer),
        first_name=customer.first_name,
        last_name=customer.last_name,
        date_joined=customer.date_joined,
    )


def _email_verified(customer: User) -> bool:
    return bool(
        EmailAddress.objects.filter(
            user=customer, email__iexact=customer.email, verified=True
        ).exists()
    )


@router.delete(
    "/me",
    response={204: None, **error_responses(401, 403, 422, 429)},
    openapi_extra={"responses": DELETE_RESPONSES},
)
def me_delete(request: HttpRequest, body: MeDeleteIn | None = None) -> Status[None]:
    """Deletes the customer's account after re-checking their password. Orders keep their
    lines and money facts (accounting); name, email, saved addresses, carts and the
    orders' email and shipping details (all but the country) are erased; every session
    and token ends, so the cookie and the X-Session-Token stop working at once."""
    customer = customer_required(request)
    account_delete(
        request=request, customer=customer, password=body.password if body is not None else ""
    )
    return Status(204, None)


@router.get("/me/orders", response={200: MeOrderPageOut, **error_responses(401, 422)})
def me_order_list(request: HttpRequest, params: Query[MeOrderListParams]) -> MeOrderPageOut:
    """The customer's orders, newest first, paginated like the catalog."""
    customer = customer_required(request)
    page = order_page_for_customer(customer=customer, page=params.page, page_size=params.page_size)
    return MeOrderPageOut(
        items=[
            MeOrderOut(**order_out(order).model_dump(), created_at=order.created_at)
            for order in page.orders
        ],
        count=page.order_count,
        page=params.page,
        page_size=params.page_size,
    )


@router.get("/me/orders/{order_id}", response={200: OrderOut, **error_responses(401, 404, 422)})
def me_order_detail(request: HttpRequest, order_id: UUID) -> OrderOut:
    """One of the customer's orders, as the order API shows it."""
    customer = customer_required(request)
    return order_out(order_get_for_client(order_id=order_id, token=None, customer=customer))
