"""The staff API for refunds (`/api/v1/staff/`, tag `staff`; docs/staff-api.md).

Every operation authenticates a staff token or a staff session and checks a Django
permission first (djangomart.accounts.auth), so that someone who may not act learns
nothing about orders; then an order or refund that is not there, or a refund of
another order, is a 404 and nothing changes. The work is payments.refund_requests'."""

import json
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status

from djangomart.accounts.auth import staff_auth, staff_user
from djangomart.api.schemas import error_responses
from djangomart.api.staff import (
    STAFF_AUTH_ERRORS,
    StaffIdempotencyKey,
    StaffLineQuantityIn,
    line_refs,
    staff_order_get,
)
from djangomart.api.types import NulFree
from djangomart.core.errors import NotFound
from djangomart.orders.models import Order
from djangomart.payments import refund_requests
from djangomart.payments.models import Refund, RefundOrigin, RefundStatus

router = Router(tags=["staff"])

# Asking for a refund (and retrying one) needs "Can add refund"; reading refunds needs
# "Can view refund" or that. A retry is also allowed by the model's own "Can retry a
# failed refund", as in the admin.
ADD = ("payments.add_refund",)
VIEW = ("payments.view_refund", "payments.add_refund")
RETRY = ("payments.add_refund", "payments.retry_refund")

# Stripe's largest amount is 8 digits for most currencies and 12 for a few: anything
# larger is no amount at all.
MAX_AMOUNT = 10**12 - 1
RefundReason = Literal["duplicate", "fraudulent", "requested_by_customer"]


class StaffRefundIn(Schema):
    model_config = {
        "json_schema_extra": {
            "examples": [{"amount": 1500, "reason": "requested_by_customer", "note": "Mug broke"}]
        }
    }

    amount: Annotated[int, Field(ge=1, le=MAX_AMOUNT, strict=True)] | None = Field(
        None,
        description="In the order currency's minor unit (1500 = 15.00 USD). Leave it out "
        "for a full refund: all that is left of the payment.",
    )
    reason: RefundReason | None = Field(
        None, description="Stripe's refund reason, shown to the card network; or none."
    )
    note: Annotated[str, Field(max_length=refund_requests.NOTE_MAX_LENGTH), NulFree] = Field(
        "", description="Why, for the order's timeline (with your name)."
    )
    restock: Annotated[list[StaffLineQuantityIn], Field(max_length=100)] = Field(
        default_factory=list,
        description="Units going back to stock with this refund (the customer sent them "
        "back, or they never shipped): a `return` movement each in the stock ledger, in "
        "the transaction that records the refund. At most what a line sold, counted across "
        "all its returns (409 `return_exceeds_sold`). A replay restocks nothing again.",
    )


class StaffRefundOut(Schema):
    id: UUID = Field(description="DjangoMart's id of the refund (`refund:<id>` at Stripe).")
    order_id: UUID
    stripe_refund_id: str | None = Field(description="Null until Stripe has answered.")
    amount: int = Field(description="In the currency's minor unit.")
    currency: str
    status: RefundStatus = Field(
        description="Stripe's status. `pending` with no `stripe_refund_id`: Stripe has not "
        "answered yet, DjangoMart sends it again by itself. `failed`: refused (see "
        "`failure_reason`); it can be retried."
    )
    reason: str | None = Field(description="Stripe's refund reason, or null.")
    failure_reason: str | None = Field(
        description="Why Stripe refused or failed it (Stripe's code), or null."
    )
    last_error: str | None = Field(
        description="What went wrong when DjangoMart asked Stripe (a refusal's message, an "
        "outage), or null."
    )
    origin: RefundOrigin = Field(
        description="`staff` (admin or this API), `policy` (LATE_PAYMENT_POLICY) or "
        "`stripe` (made in the Stripe Dashboard)."
    )
    requested_by: str | None = Field(description="The staff user's username, or null.")
    note: str
    created_at: datetime


class StaffOrderMoneyOut(Schema):
    id: UUID
    currency: str
    payment_status: str
    amount_paid: int
    amount_refunded: int = Field(description="Succeeded refunds.")
    refundable: int = Field(
        description="What may still be refunded: paid minus succeeded and pending refunds."
    )


class StaffRefundAnswer(Schema):
    refund: StaffRefundOut
    order: StaffOrderMoneyOut


class StaffRefundList(Schema):
    order: StaffOrderMoneyOut
    refunds: list[StaffRefundOut] = Field(description="Oldest first.")


def refund_out(refund: Refund) -> StaffRefundOut:
    user = refund.requested_by
    return StaffRefundOut(
        id=refund.id,
        order_id=refund.order_id,
        stripe_refund_id=refund.stripe_refund_id,
        amount=refund.amount,
        currency=refund.currency,
        status=RefundStatus(refund.status),
        reason=refund.reason or None,
        failure_reason=refund.failure_reason or None,
        last_error=refund.last_error or None,
        origin=RefundOrigin(refund.origin),
        requested_by=user.get_username() if user is not None else None,
        note=refund.note,
        created_at=refund.created_at,
    )


def order_money_out(order: Order) -> StaffOrderMoneyOut:
    return StaffOrderMoneyOut(
        id=order.id,
        currency=order.currency,
        payment_status=order.payment_status,
        amount_paid=order.amount_paid,
        amount_refunded=order.amount_refunded,
        # A read for the answer; refund_request decides under the order's lock.
        refundable=refund_requests.refundable(order),
    )


def _answer(outcome: refund_requests.RefundOutcome) -> Status[StaffRefundAnswer]:
    refund = outcome.refund
    order = Order.objects.get(pk=refund.order_id)
    answer = StaffRefundAnswer(refund=refund_out(refund), order=order_money_out(order))
    if not outcome.created:
        return Status(200, answer)
    if refund.status == RefundStatus.PENDING and refund.stripe_refund_id is None:
        return Status(202, answer)
    return Status(201, answer)


_AUTH_ERRORS = STAFF_AUTH_ERRORS
_CREATED = {
    200: {"description": "A replay (the same Idempotency-Key and body): the first refund."},
    201: {
        "description": "Created and answered by Stripe: `succeeded` (or `pending` at Stripe), "
        "or `failed` when Stripe refused it (`failure_reason`; retry it with `/retry`)."
    },
    202: {
        "description": "Created, but Stripe has not answered yet (`pending`, no "
        "`stripe_refund_id`): DjangoMart sends it again by itself with the same Stripe "
        "idempotency key; poll the refund."
    },
}
CREATE_RESPONSES = {
    **STAFF_AUTH_ERRORS,
    **_CREATED,
    404: {"description": "`not_found`: no such order."},
    409: {
        "description": "`order_not_paid`; `charge_disputed` (the payment is disputed, or a "
        "dispute was lost); `refund_exceeds_refundable` (with `refundable`, `max_amount` "
        "and `currency`); `return_exceeds_sold` (a `restock` line, with `sku` and "
        "`returnable`). Nothing was created."
    },
    422: {
        "description": "`validation_error` (details name the field or `header.Idempotency-Key`; "
        "an unknown or repeated `restock` line); "
        "`idempotency_key_reused`: the key was used on this order with another body."
    },
}
RETRY_RESPONSES = {
    **STAFF_AUTH_ERRORS,
    **_CREATED,
    200: {"description": "This refund was retried already: that retry, as it is now."},
    404: {"description": "`not_found`: no such order, or no such refund on this order."},
    409: {
        "description": "`refund_not_retryable` (only a failed or canceled refund is); "
        "`order_not_paid`, `charge_disputed`, `refund_exceeds_refundable`."
    },
}
READ_RESPONSES = {
    **STAFF_AUTH_ERRORS,
    404: {"description": "`not_found`: no such order, or no such refund on this order."},
}


def _body_is_an_object(request: HttpRequest) -> None:
    """`[]`, `null` or `"..."` would read as "no amount": a full refund out of a malformed
    body. Money moves only on an explicit JSON object (`{}` for a full refund)."""
    if not isinstance(json.loads(request.body), dict):  # ninja has parsed it already
        raise refund_requests.RefundInvalid(
            "The body must be a JSON object ({} for a full refund).",
            location="body",
            kind="model_attributes_type",
        )


@router.post(
    "/orders/{order_id}/refunds",
    auth=staff_auth(*ADD),
    response={
        (200, 201, 202): StaffRefundAnswer,
        **error_responses(401, 403, 404, 409, 422),
    },
    openapi_extra={"responses": CREATE_RESPONSES},
)
def staff_refund_create(
    request: HttpRequest,
    order_id: UUID,
    body: StaffRefundIn,
    idempotency_key: StaffIdempotencyKey,
) -> Status[StaffRefundAnswer]:
    """Refunds `amount` of a paid order (all that is left when no amount is given) at
    Stripe. The refund is recorded first, then Stripe is asked; needs
    `payments.add_refund`."""
    _body_is_an_object(request)
    outcome = refund_requests.refund_request(
        order_id=order_id,
        amount=body.amount,
        reason=body.reason,
        note=body.note,
        user=staff_user(request),
        idempotency_key=idempotency_key,
        restock=line_refs(body.restock, "restock"),
    )
    return _answer(outcome)


@router.get(
    "/orders/{order_id}/refunds",
    auth=staff_auth(*VIEW),
    response={200: StaffRefundList, **error_responses(401, 403, 404, 422)},
    openapi_extra={"responses": READ_RESPONSES},
)
def staff_refund_list(request: HttpRequest, order_id: UUID) -> StaffRefundList:
    """The order's refunds, whoever made them (staff, the late-payment policy, the Stripe
    Dashboard); needs `payments.view_refund` or `payments.add_refund`."""
    order = staff_order_get(order_id)
    refunds = order.refunds.select_related("requested_by").order_by("created_at", "pk")
    return StaffRefundList(order=order_money_out(order), refunds=[refund_out(r) for r in refunds])


@router.get(
    "/orders/{order_id}/refunds/{refund_id}",
    auth=staff_auth(*VIEW),
    response={200: StaffRefundAnswer, **error_responses(401, 403, 404, 422)},
    openapi_extra={"responses": READ_RESPONSES},
)
def staff_refund_detail(request: HttpRequest, order_id: UUID, refund_id: UUID) -> StaffRefundAnswer:
    """One refund of the order; needs `payments.view_refund` or `payments.add_refund`."""
    refund = (
        Refund.objects.select_related("requested_by", "order")
        .filter(pk=refund_id, order_id=order_id)
        .first()
    )
    if refund is None:
        raise NotFound("No such refund on this order.")
    return StaffRefundAnswer(refund=refund_out(refund), order=order_money_out(refund.order))


@router.post(
    "/orders/{order_id}/refunds/{refund_id}/retry",
    auth=staff_auth(*RETRY),
    response={
        (200, 201, 202): StaffRefundAnswer,
        **error_responses(401, 403, 404, 409, 422),
    },
    openapi_extra={"responses": RETRY_RESPONSES},
)
def staff_refund_retry(
    request: HttpRequest, order_id: UUID, refund_id: UUID
) -> Status[StaffRefundAnswer]:
    """Asks again for a failed (or canceled) refund: a new refund of the same amount from
    the same payment, checked again. Retrying the same refund twice returns the first
    retry (200). Needs `payments.add_refund` or `payments.retry_refund`."""
    outcome = refund_requests.refund_retry(
        refund_id=refund_id, order_id=order_id, user=staff_user(request)
    )
    return _answer(outcome)
