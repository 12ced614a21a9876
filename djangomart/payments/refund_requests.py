"""Refunds DjangoMart asks Stripe for: by staff (the admin, the staff API) and by the
late-payment policy (docs/payments.md, "Staff refunds").

A refund is decided under the order's row lock and committed as a `pending` Refund row
before Stripe hears of it; only then, with no lock held and outside any transaction,
is Stripe asked (gateway.refund_create, idempotency key `refund:<refund id>`). So:

- two requests at the same moment cannot both spend the same money: the second one
  sees the first's pending row, which counts against what is refundable;
- a crash between the commit and Stripe's answer leaves a pending row that the
  recovery job (refunds_submit_due, periodic) sends again with the same key, so Stripe
  makes one refund however often it is asked;
- Stripe's answer is recorded under the order lock as any other refund fact is.

What is refundable: the order's succeeded payments in its currency, minus their
refunds that are succeeded or still on their way (Refund.HELD). Stripe refunds one
PaymentIntent per refund, so one refund draws from one payment: the one with the most
left; a request larger than any one payment's remainder is refused with that maximum.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from djangomart.core.errors import DomainError, NotFound
from djangomart.money import format_amount
from djangomart.orders import idempotency
from djangomart.orders.lines import LineRef
from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order, OrderEvent
from djangomart.orders.returns import stock_return
from djangomart.orders.services import order_flag, order_note
from djangomart.payments import facts, gateway
from djangomart.payments.models import Dispute, Payment, Refund
from djangomart.payments.refunds import refund_fact

logger = logging.getLogger(__name__)

Status = Refund.Status
Origin = Refund.Origin

# Stripe's refund reasons (a refund may also have none).
REASONS = ("duplicate", "fraudulent", "requested_by_customer")
NOTE_MAX_LENGTH = 500
IDEMPOTENCY_KEY_MAX_LENGTH = idempotency.KEY_MAX_LENGTH  # Refund.idempotency_key
IDEMPOTENCY_KEY_LOCATION = idempotency.KEY_LOCATION

# When an unanswered refund is sent again (by the recovery job): 1, 2, 4 ... minutes
# after each attempt, at most an hour apart. The first delay is longer than any one
# request's Stripe budget, so the job never races the request that created the row.
SUBMIT_RETRY_FIRST = timedelta(minutes=1)
SUBMIT_RETRY_MAX = timedelta(hours=1)
# After this many attempts without an answer the order is flagged for a human.
SUBMIT_ATTEMPTS_ATTENTION = 6
# Stripe keeps idempotency keys for 24 hours; after that the same key could make a
# second refund. A row older than this is first looked up at Stripe (metadata.refund_id).
STRIPE_KEY_LOOKUP_AGE = timedelta(hours=23)
# Refunds one run of the recovery job sends at most.
SUBMIT_BATCH_SIZE = 50

RETRYABLE = frozenset({Status.FAILED, Status.CANCELED})


# -- Errors --------------------------------------------------------------------------


class RefundInvalid(DomainError):
    """Bad input (an amount under 1, a reason Stripe does not know...): nothing changed."""

    status = 422
    code = "validation_error"

    def __init__(self, message: str, *, location: str, kind: str = "value_error") -> None:
        details = [{"location": location, "message": message, "type": kind}]
        super().__init__(message, details=details)


class OrderNotPaid(DomainError):
    status = 409
    code = "order_not_paid"
    default_message = "No money was received for this order: there is nothing to refund."


class ChargeDisputed(DomainError):
    """The payment is disputed (and Stripe does not allow refunding it) or a dispute
    about it was lost: the bank decides where that money goes, not a refund."""

    status = 409
    code = "charge_disputed"


class RefundExceedsRefundable(DomainError):
    """More than what is left: `refundable` (the whole order), `max_amount` (what one
    refund may take now: the most one undisputed payment has left), `currency`."""

    status = 409
    code = "refund_exceeds_refundable"


class IdempotencyKeyReused(idempotency.IdempotencyKeyReused):
    default_message = (
        "This Idempotency-Key was already used for another refund request on this order "
        "(another amount, reason, note or restock)."
    )


class RefundNotRetryable(DomainError):
    status = 409
    code = "refund_not_retryable"


# -- Outcome -------------------------------------------------------------------------


@dataclass(frozen=True)
class RefundOutcome:
    refund: Refund
    # False: an earlier request's refund (the same Idempotency-Key, or a retry already
    # asked for), returned as it is now.
    created: bool

    @property
    def message(self) -> str:
        """What happened, for staff: sent, refused by Stripe, or waiting for Stripe."""
        return refund_describe(self.refund)


def refund_describe(refund: Refund) -> str:
    money = format_amount(refund.amount, refund.currency)
    if refund.status == Status.SUCCEEDED:
        return f"Refund of {money} succeeded at Stripe."
    if refund.status in RETRYABLE:
        why = f" ({refund.failure_reason})" if refund.failure_reason else ""
        detail = f": {refund.last_error}" if refund.last_error else "."
        return f"Refund of {money} {refund.status}{why}{detail} It can be retried."
    if refund.stripe_refund_id:
        return f"Refund of {money} accepted by Stripe, {refund.status.replace('_', ' ')}."
    when = refund.submit_next_at.strftime("%Y-%m-%d %H:%M UTC") if refund.submit_next_at else ""
    if refund.last_error:
        return (
            f"Refund of {money} not sent yet: {refund.last_error} It is sent again "
            f"automatically (next attempt {when}); nothing else to do."
        )
    return f"Refund of {money} is being sent to Stripe."


# -- What may be refunded --------------------------------------------------------------


def _paid_payments(order: Order) -> list[Payment]:
    return list(
        order.payments.filter(succeeded=True, currency=order.currency).order_by("created_at", "pk")
    )


def _held(payment_ids: list[int]) -> dict[int, int]:
    """Per payment, its refunds that are succeeded or still on their way."""
    rows = (
        Refund.objects.filter(payment_id__in=payment_ids, status__in=Refund.HELD)
        .values("payment_id")
        .annotate(total=Sum("amount"))
    )
    return {row["payment_id"]: int(row["total"] or 0) for row in rows}


def _remaining(payments: list[Payment]) -> dict[int, int]:
    held = _held([p.pk for p in payments])
    return {p.pk: p.amount_received - held.get(p.pk, 0) for p in payments}


def refundable(order: Order) -> int:
    """What may still be refunded of `order` (locked by the caller): its succeeded
    payments in its currency, minus their succeeded and pending refunds (Refund.HELD).
    Disputes are not counted here (refund_request refuses a disputed payment)."""
    return max(0, sum(max(0, left) for left in _remaining(_paid_payments(order)).values()))


def _disputed_payment_ids(payment_ids: list[int]) -> set[int]:
    """Payments Stripe would not refund: an open dispute that leaves the charge
    non-refundable (an inquiry may allow it: is_charge_refundable), or a lost one."""
    blocking = Q(status__in=Dispute.OPEN, is_charge_refundable=False) | Q(
        status=Dispute.Status.LOST
    )
    return set(
        Dispute.objects.filter(blocking, payment_id__in=payment_ids).values_list(
            "payment_id", flat=True
        )
    )


def _choose(order: Order, amount: int | None, payment_id: int | None) -> tuple[Payment, int]:
    """The payment a refund of `amount` (None: all that is left of it) draws from, and the
    amount; under the order's lock. `payment_id` fixes the payment (a retry). Raises
    OrderNotPaid, ChargeDisputed, RefundExceedsRefundable."""
    payments = _paid_payments(order)
    if not payments:
        if order.payments.filter(succeeded=True).exists():
            raise OrderNotPaid(
                f"The money received for this order is not in its currency "
                f"({order.currency.upper()}; flagged currency_mismatch): refund it in the "
                "Stripe Dashboard."
            )
        raise OrderNotPaid()
    remaining = _remaining(payments)
    disputed = _disputed_payment_ids(list(remaining))
    candidates = [p for p in payments if payment_id is None or p.pk == payment_id]
    if not candidates:
        raise OrderNotPaid("The payment this refund was drawn from no longer counts as paid.")
    open_ = [p for p in candidates if p.pk not in disputed]
    if not open_:
        raise ChargeDisputed(
            "This order's payment is disputed (or a dispute about it was lost): Stripe does "
            "not refund a disputed charge. Answer the dispute in the Stripe Dashboard; the "
            "bank decides where the money goes."
        )
    best = max(open_, key=lambda p: (remaining[p.pk], -p.pk))
    left = max(0, remaining[best.pk])
    total = refundable(order)
    wanted = left if amount is None else amount
    if left <= 0 or wanted > left:
        currency = order.currency
        raise RefundExceedsRefundable(
            _exceeds_message(amount, left, total, currency, some_disputed=bool(disputed)),
            refundable=total,
            max_amount=left,
            currency=currency,
        )
    return best, wanted


def _exceeds_message(
    amount: int | None, left: int, total: int, currency: str, *, some_disputed: bool
) -> str:
    if total <= 0:
        return "Nothing is left to refund on this order (refunds succeeded or pending)."
    asked = f"A refund of {format_amount(amount, currency)}" if amount else "A refund"
    if left <= 0:
        return f"{asked} is not possible: what is left is on a disputed payment."
    message = (
        f"{asked} exceeds what is refundable: at most {format_amount(left, currency)} "
        f"({left}) can be refunded"
    )
    if left < total:
        why = "on a disputed payment" if some_disputed else "on another payment"
        message += (
            f" in one refund ({format_amount(total, currency)} is refundable in all, the rest "
            f"{why}: one refund draws from one payment)"
        )
    return message + "."


# -- Asking ------------------------------------------------------------------------------


def _clean(
    amount: int | None, reason: str | None, note: str, idempotency_key: str | None
) -> tuple[str, str, str | None]:
    if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool)):
        raise RefundInvalid("The amount must be an integer (minor units).", location="amount")
    if amount is not None and amount < 1:
        raise RefundInvalid(
            "The amount must be at least 1 (minor units); leave it out for a full refund.",
            location="amount",
        )
    reason = reason or ""
    if reason and reason not in REASONS:
        raise RefundInvalid(
            f"The reason must be one of {', '.join(REASONS)} (Stripe's refund reasons); "
            "say more in the note.",
            location="reason",
        )
    note = (note or "").strip()
    if len(note) > NOTE_MAX_LENGTH:
        raise RefundInvalid(f"At most {NOTE_MAX_LENGTH} characters.", location="note")
    if "\x00" in note:
        raise RefundInvalid("The note contains a NUL character.", location="note")
    key = idempotency.idempotency_key_check(
        idempotency_key,
        invalid=lambda message: RefundInvalid(message, location=IDEMPOTENCY_KEY_LOCATION),
    )
    return reason, note, key


def _fingerprint(
    amount: int | None, reason: str, note: str, restock: Sequence[LineRef] = ()
) -> str:
    # `restock` only when given: the fingerprints stored before it existed stay valid.
    extra = {"restock": [[ref, quantity] for ref, quantity in restock]} if restock else {}
    return idempotency.request_fingerprint(amount=amount, reason=reason, note=note, **extra)


def _key_lock(order_id: UUID, key: str) -> None:
    idempotency.order_key_lock("refund", order_id, key)


def _outside_transaction(what: str) -> None:
    if connection.in_atomic_block:
        # Stripe is called after the refund row is committed and with no lock held; in
        # a caller's transaction neither would be true.
        raise RuntimeError(f"{what} must not be called inside a transaction.")


@dataclass(frozen=True)
class _Ask:
    amount: int | None
    reason: str
    note: str
    user: User | None
    key: str | None
    fingerprint: str
    payment_id: int | None = None  # a retry: the failed refund's payment
    retry_of: Refund | None = None
    # Units going back to stock with this refund (orders.returns), in its transaction.
    restock: tuple[LineRef, ...] = ()


def refund_request(
    *,
    order_id: UUID,
    amount: int | None,
    reason: str | None,
    note: str,
    user: User | None,
    idempotency_key: str | None,
    restock: Sequence[LineRef] = (),
) -> RefundOutcome:
    """A staff refund of `amount` (minor units, the order's currency; None: all that is
    left of the payment with the most left) for Stripe's `reason` (or none) with the
    staff's `note` for the timeline.

    The refund row is committed (pending) under the order's lock, then Stripe is asked
    with no lock held. The outcome's refund is `succeeded` (or pending at Stripe),
    `failed` when Stripe refused it (failure_reason: Stripe's code; retry with
    refund_retry), or pending and unsent when Stripe could not be reached (the recovery
    job sends it again, with the same key, nothing to do). The same `idempotency_key`
    with the same body returns the first request's refund (created False).

    `restock` (order line id or SKU, quantity) puts units back on the shelf in the
    transaction that records the refund (orders.returns.stock_return: `return` movements,
    never more than a line sold across its returns); a replay restocks nothing again.
    Whether Stripe then makes the refund does not undo it: the units are back.

    Raises RefundInvalid, NotFound, OrderNotPaid, ChargeDisputed,
    RefundExceedsRefundable, IdempotencyKeyReused, LinesInvalid, ReturnExceedsSold
    (nothing changed)."""
    _outside_transaction("refund_request")
    reason_clean, note, key = _clean(amount, reason, note, idempotency_key)
    ask = _Ask(
        amount=amount,
        reason=reason_clean,
        note=note,
        user=user,
        key=key,
        fingerprint=_fingerprint(amount, reason_clean, note, restock),
        restock=tuple(restock),
    )
    return _ask(order_id, ask)


def refund_retry(*, refund_id: UUID, order_id: UUID, user: User | None) -> RefundOutcome:
    """A failed (or canceled) refund of the order asked again: a new refund row of the
    same amount from the same payment (a new Stripe idempotency key), checked again
    against what is refundable and disputes. Retrying the same refund again returns the
    retry already made (created False); retry that one if it failed too.

    Raises NotFound (no such refund on this order), RefundNotRetryable, OrderNotPaid,
    ChargeDisputed, RefundExceedsRefundable."""
    _outside_transaction("refund_retry")
    failed = Refund.objects.filter(pk=refund_id, order_id=order_id).first()
    if failed is None:
        raise NotFound("No such refund on this order.")
    if failed.status not in RETRYABLE:
        raise RefundNotRetryable(
            f"Only a failed or canceled refund can be retried; this one is {failed.status}."
        )
    ask = _Ask(
        amount=failed.amount,
        reason=failed.reason,
        note=failed.note,
        user=user,
        key=f"retry:{failed.pk}",
        fingerprint=_fingerprint(failed.amount, failed.reason, f"retry:{failed.pk}"),
        payment_id=failed.payment_id,
        retry_of=failed,
    )
    return _ask(order_id, ask)


def _ask(order_id: UUID, ask: _Ask) -> RefundOutcome:
    refund, created = _open(order_id, ask)
    due = refund.submit_next_at is None or refund.submit_next_at <= timezone.now()
    if refund.status == Status.PENDING and refund.stripe_refund_id is None and (created or due):
        # A repeated request sends an unanswered refund again only when the recovery
        # job would (a double-click waits for the first click's answer instead).
        refund = refund_submit(refund.pk)
    return RefundOutcome(refund=refund, created=created)


def _open(order_id: UUID, ask: _Ask) -> tuple[Refund, bool]:
    try:
        return _open_locked(order_id, ask)
    except IntegrityError:
        # The key's advisory lock serializes requests with one key; this is the
        # database's last word (refund_unique_idempotency_key).
        if ask.key is None:
            raise
        existing = Refund.objects.filter(order_id=order_id, idempotency_key=ask.key).first()
        if existing is None:
            raise
        _same_body(existing, ask)
        return existing, False


def _same_body(existing: Refund, ask: _Ask) -> None:
    if existing.request_fingerprint != ask.fingerprint:
        raise IdempotencyKeyReused()


@transaction.atomic
def _open_locked(order_id: UUID, ask: _Ask) -> tuple[Refund, bool]:
    if ask.key is not None:
        _key_lock(order_id, ask.key)  # lock order: the advisory lock first, then the order
    order = orders_lock([order_id]).get(order_id)
    if order is None:
        raise NotFound("No such order.")
    if ask.key is not None:
        existing = Refund.objects.filter(order=order, idempotency_key=ask.key).first()
        if existing is not None:
            _same_body(existing, ask)
            return existing, False
    payment, amount = _choose(order, ask.amount, ask.payment_id)
    refund = Refund.objects.create(
        order=order,
        payment=payment,
        stripe_payment_intent_id=payment.stripe_payment_intent_id,
        amount=amount,
        currency=payment.currency,
        reason=ask.reason,
        status=Status.PENDING,
        origin=Origin.STAFF,
        requested_by=ask.user,
        note=ask.note,
        idempotency_key=ask.key,
        request_fingerprint=ask.fingerprint,
        # Picked up by the recovery job should this request die before Stripe answers.
        submit_next_at=timezone.now() + SUBMIT_RETRY_FIRST,
    )
    who = ask.user.get_username() if ask.user is not None else "staff"
    money = format_amount(amount, refund.currency)
    what = f"Refund of {money} asked by {who}"
    if ask.retry_of is not None:
        what += f" (a retry of the {ask.retry_of.status} refund {ask.retry_of.pk})"
    if ask.reason:
        what += f", reason {ask.reason}"
    order_note(
        order,
        OrderEvent.Kind.REFUND,
        what + (f": {ask.note}" if ask.note else "."),
        staff_user=ask.user,
        refund_id=str(refund.pk),
        amount=amount,
        currency=refund.currency,
        reason=ask.reason,
        origin=Origin.STAFF,
        status=Status.PENDING,
        payment_intent=payment.stripe_payment_intent_id,
        **({"retry_of": str(ask.retry_of.pk)} if ask.retry_of is not None else {}),
    )
    if ask.restock:
        stock_return(
            order,
            ask.restock,
            staff_user=ask.user,
            note=f"refund {refund.pk}",
            data={"refund_id": str(refund.pk)},
        )
    return refund, True


# -- The late-payment policy -------------------------------------------------------------


def refund_policy_queue(
    order: Order, payment: Payment, *, stripe_event_id: str, note: str
) -> Refund:
    """The late-payment policy refunds the whole of `payment` (succeeded) of `order`
    (locked by the caller, inside its transaction, e.g. a webhook handler's): a refund
    row (origin `policy`, one per payment: refund_one_policy_refund_per_payment) and a
    job, queued in the same transaction, that sends it to Stripe (refund_submit). Called
    again for the same payment (the same money reported twice) it returns the refund
    already queued and queues nothing: the payment is refunded once.

    The amount is what is left of the payment (its refunds made elsewhere deducted);
    when nothing seems left, the whole payment is asked for and Stripe, which knows,
    refuses it (`charge_already_refunded`: the refund is then `failed`, on the timeline)."""
    if payment.order_id != order.pk or not payment.succeeded:
        raise ValueError("refund_policy_queue needs a succeeded payment of the order.")
    existing = Refund.objects.filter(payment=payment, origin=Origin.POLICY).first()
    if existing is not None:
        return existing
    left = _remaining([payment])[payment.pk]
    amount = left if left > 0 else payment.amount_received
    try:
        with transaction.atomic():  # a savepoint: a lost race must not abort the caller
            refund = Refund.objects.create(
                order=order,
                payment=payment,
                stripe_payment_intent_id=payment.stripe_payment_intent_id,
                amount=amount,
                currency=payment.currency,
                status=Status.PENDING,
                origin=Origin.POLICY,
                note=note,
                submit_next_at=timezone.now() + SUBMIT_RETRY_FIRST,
            )
    except IntegrityError:
        existing = Refund.objects.filter(payment=payment, origin=Origin.POLICY).first()
        if existing is None:
            raise
        return existing
    from djangomart.payments.tasks import refund_submit_task

    refund_submit_task.configure(queueing_lock=f"refund_submit:{refund.pk}").defer(
        refund_id=str(refund.pk)
    )
    order_note(
        order,
        OrderEvent.Kind.REFUND,
        f"Refund of {format_amount(amount, refund.currency)} queued by the late-payment "
        f"policy" + (f": {note}" if note else "."),
        stripe_event_id=stripe_event_id,
        refund_id=str(refund.pk),
        amount=amount,
        currency=refund.currency,
        origin=Origin.POLICY,
        status=Status.PENDING,
        payment_intent=payment.stripe_payment_intent_id,
    )
    return refund


# -- Sending to Stripe -------------------------------------------------------------------


def _backoff(attempts: int) -> timedelta:
    delay: timedelta = SUBMIT_RETRY_FIRST * (2 ** max(0, attempts - 1))
    return min(delay, SUBMIT_RETRY_MAX)


def refund_submit(refund_id: UUID) -> Refund:
    """Sends a pending refund DjangoMart started to Stripe (key `refund:<id>`), with no
    lock held and outside any transaction, and records the answer under the order's
    lock. A refund already answered is returned as it is (nothing sent).

    - Stripe's refund: recorded as the refund fact (its Stripe id and status);
    - a refusal (gateway.GatewayRejected): the refund is `failed`, failure_reason =
      Stripe's code, last_error = its message, on the timeline; staff may retry it;
    - an outage (Stripe down past the gateway's budget, the same key still in use, or
      our API key refused with a 401/403):
      the refund stays pending with submit_next_at (backoff) for the recovery job, which
      sends it again with the same key.

    A row older than STRIPE_KEY_LOOKUP_AGE is first looked up at Stripe by its
    metadata.refund_id: Stripe forgets idempotency keys after 24 hours, and a refund
    made by a lost attempt must not be made twice (a lookup that fails leaves it
    waiting)."""
    _outside_transaction("refund_submit")
    refund = _submit_claim(refund_id)
    if refund is None:
        return Refund.objects.get(pk=refund_id)
    answer: dict[str, Any] | None = None
    if refund.created_at <= timezone.now() - STRIPE_KEY_LOOKUP_AGE:
        try:
            answer = _stripe_lookup(refund)
        except gateway.GatewayError as exc:
            # Refused or not answered, the lookup did not say whether a lost attempt made
            # the refund: sending it now, with a key Stripe may have forgotten, could
            # make a second one. It waits, as for an outage.
            return _unanswered(refund, exc)
    if answer is None:
        try:
            answer = gateway.refund_create(
                refund_id=str(refund.pk),
                order_id=str(refund.order_id),
                payment_intent_id=refund.stripe_payment_intent_id,
                amount=refund.amount,
                reason=refund.reason or None,
            )
        except gateway.GatewayRejected as exc:
            if exc.http_status in (401, 403):
                # Our API key refused (revoked, rotated, restricted): not this refund's
                # fault, and fixing the key lets it go through; it waits, as for an outage.
                return _unanswered(refund, exc)
            return _refused(refund, exc)
        except gateway.GatewayError as exc:  # an outage, or the key still in use
            return _unanswered(refund, exc)
    return _answered(refund, answer)


@transaction.atomic
def _submit_claim(refund_id: UUID) -> Refund | None:
    """Under the order's lock: the refund if it still waits for Stripe, its attempt
    counted and its next attempt scheduled before Stripe is called (a crash during the
    call is then retried by the job, not lost)."""
    order_id = Refund.objects.filter(pk=refund_id).values_list("order_id", flat=True).first()
    if order_id is None:
        raise NotFound("No such refund.")
    orders_lock([order_id])
    refund = Refund.objects.get(pk=refund_id)
    if refund.status != Status.PENDING or refund.stripe_refund_id or refund.origin == Origin.STRIPE:
        return None
    refund.submit_attempts += 1
    refund.submit_next_at = timezone.now() + _backoff(refund.submit_attempts)
    refund.save(update_fields=["submit_attempts", "submit_next_at", "updated_at"])
    return refund


def _stripe_lookup(refund: Refund) -> dict[str, Any] | None:
    for obj in gateway.refunds_list(refund.stripe_payment_intent_id):
        metadata = obj.get("metadata")
        if isinstance(metadata, dict) and metadata.get("refund_id") == str(refund.pk):
            return obj
    return None


def _locked(refund: Refund) -> tuple[Order, Refund]:
    order = orders_lock([refund.order_id])[refund.order_id]
    return order, Refund.objects.get(pk=refund.pk)


@transaction.atomic
def _answered(refund: Refund, obj: dict[str, Any]) -> Refund:
    order, _ = _locked(refund)
    refund_fact(order, obj)
    current = Refund.objects.get(pk=refund.pk)
    if current.submit_next_at is not None or current.last_error:
        current.submit_next_at = None
        current.last_error = ""
        current.save(update_fields=["submit_next_at", "last_error", "updated_at"])
    return current


@transaction.atomic
def _refused(refund: Refund, exc: gateway.GatewayError) -> Refund:
    order, current = _locked(refund)
    if current.status != Status.PENDING or current.stripe_refund_id:
        return current  # Stripe's own refund fact arrived meanwhile (a webhook): it wins
    current.status = Status.FAILED
    current.failure_reason = (exc.code or "refused")[:255]
    current.last_error = exc.message
    current.submit_next_at = None
    current.save(
        update_fields=["status", "failure_reason", "last_error", "submit_next_at", "updated_at"]
    )
    money = format_amount(current.amount, current.currency)
    order_note(
        order,
        OrderEvent.Kind.REFUND,
        f"Refund of {money} refused by Stripe ({current.failure_reason}): {exc.message} "
        "Nothing was refunded; staff may retry it.",
        refund_id=str(current.pk),
        status=Status.FAILED,
        failure_reason=current.failure_reason,
        stripe_request_id=exc.request_id,
    )
    if current.origin == Origin.POLICY:
        # Nobody asked for this refund in person, and the order has ended: without a
        # flag nobody would learn that the late payment was kept.
        order_flag(
            order,
            "refund_failed",
            message=f"The late-payment policy's refund of {money} was refused by Stripe "
            f"({current.failure_reason}): {exc.message}",
        )
    facts.order_money_refresh(order)
    return current


@transaction.atomic
def _unanswered(refund: Refund, exc: gateway.GatewayError) -> Refund:
    order, current = _locked(refund)
    if current.status != Status.PENDING or current.stripe_refund_id:
        return current
    if isinstance(exc, gateway.GatewayIdempotencyInUse):
        current.last_error = f"Stripe was still processing an earlier attempt ({exc.message})."
    else:
        current.last_error = f"Stripe could not be reached ({exc.message})."
    current.submit_next_at = timezone.now() + _backoff(current.submit_attempts)
    current.save(update_fields=["last_error", "submit_next_at", "updated_at"])
    logger.warning(
        "refund not sent: Stripe unavailable; the recovery job sends it again",
        extra={"refund_id": str(current.pk), "attempts": current.submit_attempts,
               **exc.log_fields()},
    )  # fmt: skip
    if current.submit_attempts == 1:
        order_note(
            order,
            OrderEvent.Kind.REFUND,
            f"Refund of {format_amount(current.amount, current.currency)} not sent yet: "
            f"{current.last_error} It is sent again automatically with the same idempotency "
            "key.",
            refund_id=str(current.pk),
            status=Status.PENDING,
        )
    elif current.submit_attempts == SUBMIT_ATTEMPTS_ATTENTION:
        order_flag(
            order,
            "refund_not_sent",
            message=f"Refund {current.pk} could not be sent to Stripe after "
            f"{current.submit_attempts} attempts ({exc.message}); still retrying.",
        )
    return current


def refunds_submit_due(*, now: datetime | None = None, limit: int = SUBMIT_BATCH_SIZE) -> int:
    """The recovery job: sends again every refund DjangoMart started that Stripe has not
    answered and whose next attempt is due (same idempotency key). Stops at the first
    outage (the others would meet it too; the next run goes on). Returns how many
    refunds got an answer."""
    now = now or timezone.now()
    due = list(
        Refund.objects.filter(
            status=Status.PENDING,
            stripe_refund_id__isnull=True,
            submit_next_at__lte=now,
            origin__in=[Origin.STAFF, Origin.POLICY],
        )
        .order_by("submit_next_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    answered = 0
    for refund_id in due:
        refund = refund_submit(refund_id)
        if refund.status == Status.PENDING and refund.stripe_refund_id is None:
            if refund.last_error:
                break
            continue  # claimed by someone else meanwhile
        answered += 1
    return answered


# -- Recording Stripe's answer -----------------------------------------------------------
