"""The late-payment policy (settings.LATE_PAYMENT_POLICY): money that arrived, in the
right amount and currency, for an order that had already expired, failed or been
canceled (by Stripe, by checkout, or by staff).

- `accept` (default): the order's stock is reserved again, all lines or none, and the
  order becomes `paid` (transitions.late_payment_accept), which sells it as for any
  paid order. When any line is short of stock, the money is refunded as for `refund`.
- `refund`: the whole payment is refunded automatically (a `policy` Refund row and its
  Stripe call queued as a job, payments.refund_requests.refund_policy_queue); the order
  keeps its ended status.
- `hold`: the order is flagged `late_payment` for a human, nothing else.

The decision is taken once per payment (PaymentIntent) and written to the order's
timeline as an OrderEvent of kind `late_payment` (data: payment_intent, policy,
outcome): however often the same money is reported afterwards (the same event twice,
payment_intent.succeeded and checkout.session.completed, a sync or reconciliation
with no Stripe event), that entry is found and nothing is decided again, even if the
setting changed meanwhile. A report without a Stripe event that adds nothing writes
nothing (payments.facts returns before it comes here).

facts.payment_succeeded calls this only after its checks: money of another amount or
currency is flagged there and never comes here; a payment for an order that already
has another successful payment is flagged `duplicate_payment` there and held here
(never accepted nor refunded automatically: which of the two to give back is a
human's call).
"""

from enum import StrEnum
from typing import Any

from django.conf import settings

from djangomart.money import format_amount
from djangomart.orders import transitions
from djangomart.orders.models import Order, OrderEvent
from djangomart.orders.services import order_flag, order_note
from djangomart.orders.stock import Shortage
from djangomart.payments.models import Payment

Status = Order.Status

# The statuses a late payment is about (the ones a transition can revive).
ENDED = frozenset({Status.FAILED, Status.EXPIRED, Status.CANCELED})


class Policy(StrEnum):
    ACCEPT = "accept"
    REFUND = "refund"
    HOLD = "hold"


class Outcome(StrEnum):
    ACCEPTED = "accepted"  # stock reserved again, the order paid
    REFUNDED = "refunded"  # a policy refund queued (its own status is on its Refund row)
    HELD = "held"  # flagged late_payment for a human


def late_payment_decision(order: Order, payment: Payment) -> OrderEvent | None:
    """The timeline entry of what the policy decided about `payment`, if it did."""
    return (
        order.events.filter(
            kind=OrderEvent.Kind.LATE_PAYMENT,
            data__payment_intent=payment.stripe_payment_intent_id,
        )
        .order_by("pk")
        .first()
    )


def late_payment_apply(
    order: Order, payment: Payment, *, stripe_event_id: str, duplicate: bool
) -> None:
    """Money in full for the ended `order` (locked by the caller), on `payment`: applies
    LATE_PAYMENT_POLICY once per payment (module docstring). `duplicate`: the order
    already has another successful payment (flagged duplicate_payment by the caller).
    Neither commits nor calls Stripe (a refund is queued as a job)."""
    assert order.status in ENDED, order.status
    decided = late_payment_decision(order, payment)
    if decided is not None:
        _reported_again(order, payment, decided, stripe_event_id=stripe_event_id)
        return
    amount = format_amount(payment.amount_received, payment.currency)
    ended = order.status
    base: dict[str, Any] = {
        "payment_intent": payment.stripe_payment_intent_id,
        "amount": payment.amount_received,
        "currency": payment.currency,
        "from_status": ended,
    }
    policy = Policy(settings.LATE_PAYMENT_POLICY)
    if duplicate:
        _hold(
            order,
            payment,
            stripe_event_id=stripe_event_id,
            message=f"Late payment of {amount} received while {ended}, and the order already "
            "has another successful payment (duplicate_payment): held for staff, "
            f"LATE_PAYMENT_POLICY={policy} not applied.",
            data={**base, "policy": str(policy), "reason": "duplicate_payment"},
        )
        return
    if policy == Policy.HOLD:
        _hold(
            order,
            payment,
            stripe_event_id=stripe_event_id,
            message=f"Late payment of {amount} received while {ended}: held for staff "
            "(LATE_PAYMENT_POLICY=hold).",
            data={**base, "policy": str(policy)},
        )
        return
    if policy == Policy.ACCEPT:
        shortages = transitions.late_payment_accept(
            order,
            stripe_event_id=stripe_event_id,
            message=f"Late payment of {amount} accepted (LATE_PAYMENT_POLICY=accept): the "
            f"order had {ended}; its stock was reserved again and sold.",
            data={"cause": "late_payment", "payment_intent": payment.stripe_payment_intent_id},
        )
        if not shortages:
            order_note(
                order,
                OrderEvent.Kind.LATE_PAYMENT,
                f"Late payment of {amount} received while {ended}: accepted "
                "(LATE_PAYMENT_POLICY=accept); stock reserved again, the order is paid.",
                stripe_event_id=stripe_event_id,
                **base,
                policy=str(policy),
                outcome=str(Outcome.ACCEPTED),
            )
            return
        short = "; ".join(s.describe() for s in shortages)
        _refund(
            order,
            payment,
            stripe_event_id=stripe_event_id,
            message=f"Late payment of {amount} received while {ended}: could not be accepted, "
            f"the stock is gone ({short}); refunded automatically (LATE_PAYMENT_POLICY=accept "
            "falls back to refund).",
            note=f"late payment for a {ended} order whose stock is gone ({short})",
            data={**base, "policy": str(policy), "out_of_stock": _shortages(shortages)},
        )
        return
    _refund(
        order,
        payment,
        stripe_event_id=stripe_event_id,
        message=f"Late payment of {amount} received while {ended}: refunded automatically "
        "(LATE_PAYMENT_POLICY=refund).",
        note=f"late payment for a {ended} order (LATE_PAYMENT_POLICY=refund)",
        data={**base, "policy": str(policy)},
    )


def _shortages(shortages: list[Shortage]) -> list[dict[str, Any]]:
    return [{"sku": s.sku, "wanted": s.wanted, "available": s.available} for s in shortages]


def _hold(
    order: Order,
    payment: Payment,
    *,
    stripe_event_id: str,
    message: str,
    data: dict[str, Any],
) -> None:
    order_note(
        order,
        OrderEvent.Kind.LATE_PAYMENT,
        message,
        stripe_event_id=stripe_event_id,
        **data,
        outcome=str(Outcome.HELD),
    )
    _flag(order, payment, stripe_event_id=stripe_event_id)


def _flag(order: Order, payment: Payment, *, stripe_event_id: str) -> None:
    order_flag(
        order,
        "late_payment",
        stripe_event_id=stripe_event_id,
        message=f"Payment of {payment.amount_received} {payment.currency} received while "
        f"{order.status}.",
    )


def _refund(
    order: Order,
    payment: Payment,
    *,
    stripe_event_id: str,
    message: str,
    note: str,
    data: dict[str, Any],
) -> None:
    """Queues the refund of the whole payment (its Stripe call is a job run after the
    commit; its own timeline entries follow the refund) and records the decision.
    `note` goes on the Refund row and its timeline entry."""
    # Imported here: refund_requests builds on the facts module that calls this one.
    from djangomart.payments.refund_requests import refund_policy_queue

    # The decision first, so that the timeline reads in the order things happened.
    decision = OrderEvent.objects.create(
        order=order,
        kind=OrderEvent.Kind.LATE_PAYMENT,
        stripe_event_id=stripe_event_id,
        message=message,
        data={**data, "outcome": str(Outcome.REFUNDED)},
    )
    refund = refund_policy_queue(order, payment, stripe_event_id=stripe_event_id, note=note)
    decision.data["refund_id"] = str(refund.pk)
    decision.save(update_fields=["data"])


def _reported_again(
    order: Order, payment: Payment, decided: OrderEvent, *, stripe_event_id: str
) -> None:
    """The same late money reported once more. Without a Stripe event nothing is
    written (a sync repeating a known fact); a new Stripe event is noted, and a held
    payment is flagged again as any Stripe event about it would (order_flag writes one
    entry per event, and raises the flag again if staff had resolved it)."""
    if not stripe_event_id:
        return
    outcome = decided.data.get("outcome")
    if outcome == Outcome.HELD:
        _flag(order, payment, stripe_event_id=stripe_event_id)
        return
    what = {
        Outcome.REFUNDED: f"its refund was already queued (refund {decided.data.get('refund_id')})",
        Outcome.ACCEPTED: "it was already accepted",
    }.get(outcome, "it was already decided")
    order_note(
        order,
        OrderEvent.Kind.PAYMENT_RECORDED,
        f"Late payment reported again: {what}; nothing more done.",
        stripe_event_id=stripe_event_id,
        payment_intent=payment.stripe_payment_intent_id,
        outcome=outcome,
    )
