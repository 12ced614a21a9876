"""Writes on orders that are not lifecycle transitions: flags and notes. Functions that
take an `order` expect it locked by the caller (money facts live in payments.facts)."""

from collections.abc import Iterable
from uuid import UUID

from django.contrib.auth.models import User
from django.db import transaction

from djangomart.core.errors import DomainError, NotFound
from djangomart.notify.events import EventType
from djangomart.notify.services import notify_enqueue
from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order, OrderEvent

# A staff member's reason for an action, as it goes on the timeline.
STAFF_REASON_MAX_LENGTH = 500


class StaffReasonInvalid(DomainError):
    status = 422
    code = "validation_error"

    def __init__(self, message: str) -> None:
        details = [{"location": "reason", "message": message, "type": "value_error"}]
        super().__init__(message, details=details)


def staff_reason_clean(reason: str) -> str:
    """A staff action's reason: required, trimmed and bounded, because the timeline is
    how the next person learns why an order was ended or its flag cleared."""
    reason = (reason or "").strip()
    if not reason:
        raise StaffReasonInvalid("A reason is required.")
    if len(reason) > STAFF_REASON_MAX_LENGTH:
        raise StaffReasonInvalid(f"At most {STAFF_REASON_MAX_LENGTH} characters.")
    if "\x00" in reason:
        raise StaffReasonInvalid("The reason contains a NUL character.")
    return reason


def order_flag(order: Order, reason: str, *, stripe_event_id: str = "", message: str = "") -> None:
    """Marks the order as needing a human, with a stable reason code. A flag already
    raised is not written again by a sync or reconciliation (no Stripe event), nor by
    the same Stripe event twice: repeating a known fact writes nothing."""
    if reason in order.attention_reasons and (
        not stripe_event_id
        or order.events.filter(
            kind=OrderEvent.Kind.FLAGGED, stripe_event_id=stripe_event_id, data__reason=reason
        ).exists()
    ):
        return
    newly_raised = reason not in order.attention_reasons
    if newly_raised:
        order.attention_reasons = [*order.attention_reasons, reason]
    order.needs_attention = True
    order.save(update_fields=["needs_attention", "attention_reasons", "updated_at"])
    flagged = OrderEvent.objects.create(
        order=order,
        kind=OrderEvent.Kind.FLAGGED,
        stripe_event_id=stripe_event_id,
        message=message or reason,
        data={"reason": reason},
    )
    if not newly_raised:
        # Another Stripe event about a reason already raised (the same held payment told
        # by checkout.session.completed and payment_intent.succeeded): on the timeline,
        # but staff and the shop's systems heard of it when it was raised.
        return
    notify_enqueue(
        EventType.ORDER_NEEDS_ATTENTION,
        order,
        cause=str(flagged.pk),
        objects={"attention": {"reason": reason, "message": flagged.message}},
    )


def order_attention_clear(
    order: Order, reason: str, *, message: str, stripe_event_id: str = ""
) -> bool:
    """Removes one attention reason whose cause the facts show is gone (a dispute that
    is no longer open), not a staff decision: order_attention_resolve is that. The order
    still needs attention while another reason remains. Writes a timeline note; returns
    whether the reason was there (nothing is written when it was not)."""
    if reason not in order.attention_reasons:
        return False
    remaining = [r for r in order.attention_reasons if r != reason]
    order.attention_reasons = remaining
    order.needs_attention = bool(remaining)
    order.save(update_fields=["needs_attention", "attention_reasons", "updated_at"])
    left = f" Still needs attention: {', '.join(remaining)}." if remaining else ""
    order_note(
        order,
        OrderEvent.Kind.NOTE,
        f"{reason} cleared: {message}{left}",
        stripe_event_id=stripe_event_id,
        reasons=[reason],
        remaining=remaining,
    )
    return True


def order_note(
    order: Order,
    kind: str,
    message: str,
    *,
    stripe_event_id: str = "",
    staff_user: User | None = None,
    **data: object,
) -> None:
    OrderEvent.objects.create(
        order=order,
        kind=kind,
        stripe_event_id=stripe_event_id,
        staff_user=staff_user,
        message=message,
        data=data,
    )


@transaction.atomic
def order_attention_resolve(
    *,
    order_id: UUID,
    user: User | None,
    reasons: Iterable[str],
    note: str,
    seen_through: int | None = None,
) -> list[str]:
    """Staff acted on what the order was flagged for: clears the reasons they saw, keeps
    every other one, and keeps the history (who, which reasons, their note).

    `reasons` are the ones the staff member's page showed; with `seen_through` (what
    selectors.orders_timeline_seen said when the page was rendered) a reason flagged
    again after that, by another Stripe event, counts as not seen and stays. The order
    still needs attention while a reason remains. Returns the cleared reasons; nothing
    is written when there is nothing to change."""
    note = staff_reason_clean(note)
    order = orders_lock([order_id]).get(order_id)
    if order is None:
        raise NotFound("No such order.")
    seen = set(reasons)
    if seen_through is not None:
        # The same reason raised again after the page was shown (another Stripe event)
        # was not seen. One order's flags are written under its row lock, so their ids
        # grow in commit order.
        seen -= set(
            order.events.filter(
                kind=OrderEvent.Kind.FLAGGED, pk__gt=seen_through, data__reason__in=seen
            ).values_list("data__reason", flat=True)
        )
    cleared = [r for r in order.attention_reasons if r in seen]
    remaining = [r for r in order.attention_reasons if r not in seen]
    if not cleared and order.needs_attention == bool(remaining):
        return []
    order.attention_reasons = remaining
    order.needs_attention = bool(remaining)
    order.save(update_fields=["needs_attention", "attention_reasons", "updated_at"])
    what = ", ".join(cleared) or "the flag"
    left = f" Still needs attention: {', '.join(remaining)}." if remaining else ""
    order_note(
        order,
        OrderEvent.Kind.NOTE,
        f"Attention resolved by {user or 'staff'} ({what}): {note}{left}",
        staff_user=user,
        reasons=cleared,
        remaining=remaining,
        note=note,
    )
    return cleared
