"""Staff ending a pending order by hand, from the admin (docs/payments.md, "When something
needs a human"): cancel it, or accept it as paid after review. Both are said with a
reason that goes on the timeline with the staff member.

Stripe first, with no lock held: the order's Checkout Session is expired (if still open)
before anything changes here, so that nobody can pay an order staff just ended. When
Stripe answers that the customer completed it first (paid, or a delayed payment
submitted), the session is applied as the webhook would apply it, and when that pays
the order (or a delayed payment may still pay it) Stripe's answer wins over the staff
action. Stripe unreachable: nothing changes.
"""

import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.contrib.auth.models import User
from django.db import transaction

from djangomart.core.errors import DomainError, NotFound
from djangomart.orders import transitions
from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order, OrderEvent
from djangomart.orders.services import order_note, staff_reason_clean
from djangomart.payments import gateway
from djangomart.payments.checkout import (
    PaymentProviderRejected,
    PaymentProviderUnavailable,
    checkout_session_apply,
)

logger = logging.getLogger(__name__)


class OrderNotPending(DomainError):
    status = 409
    code = "order_not_pending"


class OrderNotFlagged(DomainError):
    status = 409
    code = "order_not_flagged"
    default_message = (
        "Only an order that needs attention can be accepted as paid; this one is not flagged."
    )


class CheckoutSessionComplete(DomainError):
    """The customer completed the order's Checkout Session at Stripe (paid, or submitted
    a delayed payment): the session was applied instead of the staff action."""

    status = 409
    code = "checkout_session_complete"


@dataclass(frozen=True)
class _AtStripe:
    """The order's Checkout Session as Stripe left it after we closed it."""

    session_id: str | None
    # None: the order has no session, or Stripe does not know it.
    session: dict[str, Any] | None = None

    @property
    def complete(self) -> bool:
        return self.session is not None and self.session.get("status") == "complete"

    @property
    def paid(self) -> bool:
        return self.complete and (self.session or {}).get("payment_status") == "paid"

    def describe(self) -> str:
        if self.session_id is None:
            return "no Checkout Session"
        if self.session is None:
            return f"Checkout Session {self.session_id} unknown to Stripe"
        return f"Checkout Session {self.session_id} {self.session.get('status')}"


@dataclass(frozen=True)
class AcceptOutcome:
    order: Order
    # True when Stripe's own session paid the order (applied normally): staff's
    # acceptance was not needed and not recorded.
    paid_by_stripe: bool


def _username(user: User | None) -> str:
    return user.get_username() if user is not None else "staff"


def _pending(order_id: UUID) -> Order:
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        raise NotFound("No such order.")
    if not order.is_pending():
        raise OrderNotPending(f"The order is {order.status}, not pending; nothing was changed.")
    return order


def _session_close(order: Order) -> _AtStripe:
    """Makes sure nobody can pay the order's session any more, and says how Stripe left it.
    No lock is held. Raises PaymentProviderError (the order is unchanged)."""
    session_id = order.stripe_checkout_session_id
    if session_id is None:
        return _AtStripe(None)
    try:
        return _AtStripe(session_id, gateway.checkout_session_expire(session_id))
    except gateway.GatewayNotFound as exc:
        # Not a session of this account and mode: nobody can pay it to us. Money that
        # still reached us for the order later would be recorded and flagged late_payment.
        logger.warning(
            "staff action: Stripe does not know the order's Checkout Session",
            extra={"order_id": str(order.id), **exc.log_fields()},
        )
        return _AtStripe(session_id)
    except gateway.GatewayError as exc:
        logger.warning(
            "staff action: could not expire the Checkout Session at Stripe",
            extra={"order_id": str(order.id), **exc.log_fields()},
        )
        if isinstance(exc, gateway.GatewayRejected):
            raise PaymentProviderRejected(
                f"Stripe refused to expire the Checkout Session ({exc.message}); "
                "the order is unchanged.",
                provider_code=exc.code,
            ) from exc
        raise PaymentProviderUnavailable(
            "Stripe could not be reached to expire the Checkout Session; the order is "
            "unchanged. Try again in a moment."
        ) from exc


@transaction.atomic
def _session_apply(
    order_id: UUID, at_stripe: _AtStripe, *, user: User | None, action: str, what: str
) -> Order:
    """Applies the completed session as the webhook would. When that settles the order
    (paid) or may still settle it (a delayed payment processing), the staff action
    (`action` its code, `what` its name) is overtaken, and a note says so."""
    assert at_stripe.session is not None
    order = orders_lock([order_id])[order_id]
    checkout_session_apply(order, at_stripe.session)
    if at_stripe.paid and order.is_pending():
        # Paid at Stripe, but not what the order asks (amount, currency: flagged): that
        # payment does not pay the order, and deciding about it is the staff action.
        return order
    order_note(
        order,
        OrderEvent.Kind.NOTE,
        f"{what} by {_username(user)} not done: the customer completed the Checkout Session "
        f"at Stripe first ({'paid' if at_stripe.paid else 'payment processing'}); applied it.",
        staff_user=user,
        action=action,
        session_id=at_stripe.session_id,
    )
    return order


def _processing_message(action: str) -> str:
    return (
        f"The customer submitted a delayed payment (e.g. a bank debit) at Stripe, still "
        f"processing: the order was not {action}. Wait for the bank's answer."
    )


def order_staff_cancel(*, order_id: UUID, user: User | None, reason: str) -> Order:
    """Cancels a pending order (its stock released) for `reason`. Its Checkout Session is
    expired at Stripe first; one the customer already completed is applied instead, and
    when that pays the order (or a delayed payment is processing) CheckoutSessionComplete
    is raised. A payment that does not pay the order (an amount or currency mismatch,
    flagged) does not stop the cancel: the money stays recorded on the canceled order,
    with its flag, for staff to refund. Raises OrderNotPending, StaffReasonInvalid,
    PaymentProviderError (nothing changed)."""
    reason = staff_reason_clean(reason)
    # Twice at most: a session stored while Stripe was being asked (checkout was still
    # creating it) is closed on the second round; an order stores one session, once.
    for _ in range(2):
        order = _pending(order_id)
        at_stripe = _session_close(order)
        if at_stripe.complete:
            applied = _session_apply(order_id, at_stripe, user=user, action="cancel", what="Cancel")
            if not at_stripe.paid:
                raise CheckoutSessionComplete(_processing_message("canceled"))
            if not applied.is_pending():
                raise CheckoutSessionComplete(
                    "The customer already paid at Stripe: the order was not canceled; the "
                    f"payment was applied and the order is {applied.status}."
                )
            # Paid, but the payment does not pay the order (flagged): canceling it is how
            # staff end it, after refunding the money in Stripe.
        with transaction.atomic():
            locked = orders_lock([order_id])[order_id]
            if locked.stripe_checkout_session_id != at_stripe.session_id:
                continue
            moved = transitions.apply(
                locked,
                Order.Status.CANCELED,
                staff_user=user,
                message=f"Canceled by {_username(user)}: {reason}",
                data={"action": "cancel", "reason": reason, "stripe": at_stripe.describe()},
            )
        if not moved:
            # The refused transition is on the timeline.
            raise OrderNotPending(f"The order became {locked.status} meanwhile; not canceled.")
        return locked
    raise OrderNotPending("The order changed while it was being canceled; try again.")


def order_staff_accept_paid(*, order_id: UUID, user: User | None, reason: str) -> AcceptOutcome:
    """After review, a pending order that needs attention is accepted as paid (its
    reservation sold) for `reason`; its flags stay until resolved.

    Stripe is asked first, as for a cancel: an open session is expired, so that the
    customer cannot pay a second time an order staff accepted; a session the customer
    completed is applied normally first, and when it pays the order that is the outcome
    (`paid_by_stripe`), since the money is then Stripe's fact, not a staff decision. A
    delayed payment still processing is refused (CheckoutSessionComplete): the bank may
    still fail it. Raises OrderNotPending, OrderNotFlagged, StaffReasonInvalid,
    PaymentProviderError (nothing changed)."""
    reason = staff_reason_clean(reason)
    for _ in range(2):
        order = _pending(order_id)
        if not order.needs_attention:
            raise OrderNotFlagged()
        at_stripe = _session_close(order)
        if at_stripe.complete:
            applied = _session_apply(
                order_id, at_stripe, user=user, action="accept_paid", what="Accept as paid"
            )
            if not at_stripe.paid:
                raise CheckoutSessionComplete(_processing_message("accepted as paid"))
            if applied.status == Order.Status.PAID:
                return AcceptOutcome(applied, paid_by_stripe=True)
        with transaction.atomic():
            locked = orders_lock([order_id])[order_id]
            if locked.stripe_checkout_session_id != at_stripe.session_id:
                continue
            if not locked.is_pending():
                raise OrderNotPending(f"The order became {locked.status} meanwhile; not accepted.")
            if not locked.needs_attention:
                raise OrderNotFlagged()
            transitions.apply(
                locked,
                Order.Status.PAID,
                staff_user=user,
                message=f"Accepted as paid by {_username(user)}: {reason}",
                data={
                    "action": "accept_paid",
                    "reason": reason,
                    "stripe": at_stripe.describe(),
                    "attention_reasons": list(locked.attention_reasons),
                },
            )
        return AcceptOutcome(locked, paid_by_stripe=False)
    raise OrderNotPending("The order changed while it was being accepted; try again.")
