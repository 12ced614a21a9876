"""Staff ending a pending order by hand, from the admin (docs/payments.md, "When something
needs a human"): cancel it, or accept it as paid after review. Both are said with a
reason that goes on the timeline with the staff member.

A cancel asks Stripe first, with no lock held: the order's Checkout Session is expired
(if still open) before anything changes here, so that nobody can pay an order staff just
ended. Accept as paid looks at Stripe first (a plain read), moves the order to paid, and
only then expires its session: expiring first would let the session's own
checkout.session.expired webhook expire the order (its stock released) before the
accept took the lock, while a paid order refuses that transition.

When Stripe answers that the customer completed the session first (paid, or a delayed
payment submitted), the session is applied as the webhook would apply it (a complete,
unpaid one with its PaymentIntent, as the sync does: a bank debit that already failed
fails the order), and when that settles the order (or a delayed payment may still pay
it) Stripe's answer wins over the staff action. Stripe unreachable before the order
changed: nothing changes.
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
    session_intent_read,
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


class DelayedPaymentFailed(DomainError):
    """The customer's delayed payment (a bank debit) had failed at Stripe, its webhook
    lost: applying it failed the order (its stock released) instead of the staff action."""

    status = 409
    code = "delayed_payment_failed"


@dataclass(frozen=True)
class _AtStripe:
    """The order's Checkout Session as Stripe showed it (after closing it, for a cancel)."""

    session_id: str | None
    # None: the order has no session, or Stripe does not know it.
    session: dict[str, Any] | None = None
    # A complete/unpaid session's PaymentIntent, as read (None: not read, or unreadable).
    intent: dict[str, Any] | None = None

    @property
    def status(self) -> str | None:
        return None if self.session is None else self.session.get("status")

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @property
    def paid(self) -> bool:
        return self.complete and (self.session or {}).get("payment_status") == "paid"

    def describe(self) -> str:
        if self.session_id is None:
            return "no Checkout Session"
        if self.session is None:
            return f"Checkout Session {self.session_id} unknown to Stripe"
        return f"Checkout Session {self.session_id} {self.status}"


@dataclass(frozen=True)
class AcceptOutcome:
    order: Order
    # True when Stripe's own session paid the order (applied normally): staff's
    # acceptance was not needed and not recorded.
    paid_by_stripe: bool
    # Accepted, but something staff must know (the session could not be expired, or the
    # customer completed it meanwhile); None when all went as asked.
    warning: str | None = None


@dataclass(frozen=True)
class CancelOutcome:
    order: Order
    # Why the order is not `canceled` although the cancel succeeded: "expired" (its
    # session's expiry, asked for by this cancel, arrived first) or "failed" (its bank
    # debit had failed at Stripe). None: canceled.
    ended_by: str | None = None


def _username(user: User | None) -> str:
    # No user: DjangoMart itself acted for a customer (a cart changed while its order
    # waited for payment: carts.services).
    return user.get_username() if user is not None else "DjangoMart"


def _pending(order_id: UUID) -> Order:
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        raise NotFound("No such order.")
    if not order.is_pending():
        raise OrderNotPending(f"The order is {order.status}, not pending; nothing was changed.")
    return order


def _stripe_session(order: Order, *, expire: bool) -> _AtStripe:
    """The order's Checkout Session at Stripe, expired first (`expire`: nobody can pay it
    any more) or only read, with a complete/unpaid session's PaymentIntent. No lock is
    held. Raises PaymentProviderError (the order is unchanged)."""
    session_id = order.stripe_checkout_session_id
    if session_id is None:
        return _AtStripe(None)
    try:
        if expire:
            session = gateway.checkout_session_expire(session_id)
        else:
            session = gateway.checkout_session_retrieve(session_id)
    except gateway.GatewayNotFound as exc:
        # Not a session of this account and mode: nobody can pay it to us. Money that
        # still reached us for the order later would be recorded and flagged late_payment.
        logger.warning(
            "staff action: Stripe does not know the order's Checkout Session",
            extra={"order_id": str(order.id), **exc.log_fields()},
        )
        return _AtStripe(session_id)
    except gateway.GatewayError as exc:
        what = "expire" if expire else "read"
        logger.warning(
            f"staff action: could not {what} the Checkout Session at Stripe",
            extra={"order_id": str(order.id), **exc.log_fields()},
        )
        if isinstance(exc, gateway.GatewayRejected):
            raise PaymentProviderRejected(
                f"Stripe refused to {what} the Checkout Session ({exc.message}); "
                "the order is unchanged.",
                provider_code=exc.code,
            ) from exc
        raise PaymentProviderUnavailable(
            f"Stripe could not be reached to {what} the Checkout Session; the order is "
            "unchanged. Try again in a moment."
        ) from exc
    return _AtStripe(session_id, session, session_intent_read(order, session))


@transaction.atomic
def _session_apply(
    order_id: UUID, at_stripe: _AtStripe, *, user: User | None, action: str, what: str
) -> Order:
    """Applies the completed session as the webhook would (with its PaymentIntent, as the
    sync does). When that settles the order (paid, or failed by a bank debit that had
    failed) or may still settle it (a delayed payment processing), the staff action
    (`action` its code, `what` its name) is overtaken, and a note says so."""
    assert at_stripe.session is not None
    order = orders_lock([order_id])[order_id]
    checkout_session_apply(order, at_stripe.session, intent=at_stripe.intent)
    if at_stripe.paid and order.is_pending():
        # Paid at Stripe, but not what the order asks (amount, currency: flagged): that
        # payment does not pay the order, and deciding about it is the staff action.
        return order
    if order.status == Order.Status.FAILED:
        happened = "the customer's bank debit had failed at Stripe; applied it: the order failed"
    else:
        paid = "paid" if at_stripe.paid else "payment processing"
        happened = (
            f"the customer completed the Checkout Session at Stripe first ({paid}); applied it"
        )
    order_note(
        order,
        OrderEvent.Kind.NOTE,
        f"{what} by {_username(user)} not done: {happened}.",
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


def order_staff_cancel(*, order_id: UUID, user: User | None, reason: str) -> CancelOutcome:
    """Cancels a pending order (its stock released) for `reason`. Its Checkout Session is
    expired at Stripe first; one the customer already completed is applied instead, and
    when that pays the order (or a delayed payment is processing) CheckoutSessionComplete
    is raised. A payment that does not pay the order (an amount or currency mismatch,
    flagged) does not stop the cancel: the money stays recorded on the canceled order,
    with its flag, for staff to refund.

    Two ends other than `canceled` are a success too (CancelOutcome.ended_by), since the
    order ended and its stock was released either way: its bank debit had failed at
    Stripe (the order failed), or the session's expiry this cancel asked for arrived
    first as Stripe's event (the order expired; the cancel is a note on the timeline).
    Raises OrderNotPending, StaffReasonInvalid, PaymentProviderError (nothing changed)."""
    reason = staff_reason_clean(reason)
    # One budget for every Stripe call, so that the admin request ends in WEB_TIMEOUT.
    with gateway.budget():
        return _cancel(order_id, user, reason)


def _cancel(order_id: UUID, user: User | None, reason: str) -> CancelOutcome:
    # Twice at most: a session stored while Stripe was being asked (checkout was still
    # creating it) is closed on the second round; an order stores one session, once.
    for _ in range(2):
        order = _pending(order_id)
        at_stripe = _stripe_session(order, expire=True)
        if at_stripe.complete:
            applied = _session_apply(order_id, at_stripe, user=user, action="cancel", what="Cancel")
            if applied.status == Order.Status.FAILED:
                return CancelOutcome(applied, ended_by="failed")
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
            if locked.status == Order.Status.EXPIRED and at_stripe.status == "expired":
                # Stripe's checkout.session.expired for the expiry this cancel asked for
                # came first: the order ended as asked, its stock released.
                order_note(
                    locked,
                    OrderEvent.Kind.NOTE,
                    f"Canceled by {_username(user)}: {reason} (the order had just expired: "
                    "its Checkout Session's expiry, asked for by this cancel, came first).",
                    staff_user=user,
                    action="cancel",
                    reason=reason,
                    stripe=at_stripe.describe(),
                )
                return CancelOutcome(locked, ended_by="expired")
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
        return CancelOutcome(locked)
    raise OrderNotPending("The order changed while it was being canceled; try again.")


def order_staff_accept_paid(*, order_id: UUID, user: User | None, reason: str) -> AcceptOutcome:
    """After review, a pending order that needs attention is accepted as paid (its
    reservation sold) for `reason`; its flags stay until resolved.

    1. Stripe is read first (no lock, nothing expired): a session the customer completed
       is applied normally, and when it pays the order that is the outcome
       (`paid_by_stripe`), since the money is then Stripe's fact, not a staff decision.
       A delayed payment still processing is refused (CheckoutSessionComplete): the bank
       may still fail it; one that had failed fails the order (DelayedPaymentFailed).
    2. Under the order's lock, pending -> paid with the staff reason, committed.
    3. Only then is an open session expired at Stripe (no lock held), so that the
       customer cannot pay a second time: its checkout.session.expired webhook then
       meets a paid order, a refused transition. A session the customer completed
       meanwhile is applied to the paid order (its money recorded and flagged
       duplicate_payment, see facts.payment_succeeded). Stripe failing here leaves the
       order paid, with a warning (AcceptOutcome.warning): the session expires by itself
       at its expires_at.

    Raises OrderNotPending, OrderNotFlagged, StaffReasonInvalid, DelayedPaymentFailed,
    CheckoutSessionComplete, PaymentProviderError (nothing changed)."""
    reason = staff_reason_clean(reason)
    # One budget for every Stripe call, so that the admin request ends in WEB_TIMEOUT; a
    # final expire left with too little of it fails into the warning.
    with gateway.budget():
        accepted, session_open = _accept(order_id, user, reason)
        if not session_open:
            return accepted
        return _accepted_session_close(accepted.order, user)


def _accept(order_id: UUID, user: User | None, reason: str) -> tuple[AcceptOutcome, bool]:
    """Steps 1 and 2 of order_staff_accept_paid; also whether the session is still open
    at Stripe (to expire now)."""
    for _ in range(2):
        order = _pending(order_id)
        if not order.needs_attention:
            raise OrderNotFlagged()
        at_stripe = _stripe_session(order, expire=False)
        if at_stripe.complete:
            applied = _session_apply(
                order_id, at_stripe, user=user, action="accept_paid", what="Accept as paid"
            )
            if applied.status == Order.Status.FAILED:
                raise DelayedPaymentFailed(
                    "The customer's bank debit had failed at Stripe: the order failed and its "
                    "stock was released; it was not accepted as paid."
                )
            if not at_stripe.paid:
                raise CheckoutSessionComplete(_processing_message("accepted as paid"))
            if applied.status == Order.Status.PAID:
                return AcceptOutcome(applied, paid_by_stripe=True), False
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
        # Not open: nothing anyone can pay (no session, one Stripe does not know, expired,
        # or complete with a payment that does not pay the order, applied above).
        return AcceptOutcome(locked, paid_by_stripe=False), at_stripe.status == "open"
    raise OrderNotPending("The order changed while it was being accepted; try again.")


def _accepted_session_close(order: Order, user: User | None) -> AcceptOutcome:
    """Step 3 of order_staff_accept_paid: expires the open session of an order just
    accepted as paid (committed, no lock held). What Stripe answers can no longer undo
    the acceptance: paid is final."""
    session_id = order.stripe_checkout_session_id
    assert session_id is not None
    try:
        session = gateway.checkout_session_expire(session_id)
    except gateway.GatewayError as exc:
        logger.warning(
            "accept as paid: could not expire the Checkout Session at Stripe",
            extra={"order_id": str(order.id), **exc.log_fields()},
        )
        expires_at = order.expires_at.strftime("%Y-%m-%d %H:%M UTC")
        return AcceptOutcome(
            order,
            paid_by_stripe=False,
            warning=(
                "The order was accepted as paid, but Stripe could not expire its Checkout "
                f"Session ({exc.message}): the customer can still pay it until it expires "
                f"by itself at {expires_at}. A payment to it would be recorded on the order "
                "and flagged duplicate_payment, for you to refund."
            ),
        )
    at_stripe = _AtStripe(session_id, session, session_intent_read(order, session))
    if not at_stripe.complete:
        return AcceptOutcome(order, paid_by_stripe=False)
    with transaction.atomic():
        locked = orders_lock([order.pk])[order.pk]
        checkout_session_apply(locked, session, intent=at_stripe.intent)
        paid = "paid" if at_stripe.paid else "payment processing"
        order_note(
            locked,
            OrderEvent.Kind.NOTE,
            f"The customer completed the Checkout Session at Stripe ({paid}) while "
            f"{_username(user)} accepted the order as paid; applied it to the paid order.",
            staff_user=user,
            action="accept_paid",
            session_id=session_id,
        )
    return AcceptOutcome(
        locked,
        paid_by_stripe=False,
        warning=(
            "The order was accepted as paid, but the customer completed its Checkout Session "
            f"at Stripe meanwhile ({paid}): that payment is recorded on the order (see its "
            "timeline and Payments); refund it with the Refund button if the order was paid "
            "otherwise."
        ),
    )
