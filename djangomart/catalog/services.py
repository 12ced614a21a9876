"""Stock writes. Every change of a variant's `on_hand` or `reserved` happens here, as a
relative update of a variant whose row the caller has locked with `variants_lock`, and
every change of `on_hand` adds a StockMovement (the ledger).

Lock order: several variants are always locked in one statement, in primary-key order,
so that two transactions locking overlapping variants cannot deadlock. Callers that also
lock orders lock them first (djangomart/orders/locks.py holds the global order).
"""

from collections.abc import Iterable, Mapping
from uuid import UUID

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Case, F, IntegerField, Value, When

from djangomart.catalog.models import StockMovement, Variant
from djangomart.core.errors import DomainError

Reason = StockMovement.Reason

# What staff may record by hand; sales come only from paid orders.
STAFF_REASONS = frozenset({Reason.RESTOCK, Reason.ADJUSTMENT, Reason.RETURN})


class StockChangeRefused(DomainError):
    status = 409
    code = "stock_change_refused"


class StockChangeAlreadyRecorded(StockChangeRefused):
    """The form that carries this change was sent before and its change recorded."""


def variants_lock(ids: Iterable[int]) -> dict[int, Variant]:
    """Locks the variants in pk order and returns them freshly read. Inside atomic()."""
    rows = (
        Variant.objects.filter(pk__in=sorted(set(ids)))
        .select_related("product")
        .order_by("pk")
        .select_for_update(of=("self",))
    )
    return {variant.pk: variant for variant in rows}


def _refresh_stock(variant: Variant) -> None:
    variant.on_hand, variant.reserved = Variant.objects.values_list("on_hand", "reserved").get(
        pk=variant.pk
    )


def stock_reserve(quantities: Mapping[int, int]) -> None:
    """Holds units for a pending order: variant id -> quantity. The variants must be
    locked and have that much available (the caller checks, to say which SKU is short)."""
    for variant_id, quantity in sorted(quantities.items()):
        Variant.objects.filter(pk=variant_id).update(reserved=F("reserved") + quantity)


def stock_unreserve(quantities: Mapping[int, int]) -> None:
    """Drops a pending order's hold; on_hand is untouched. Variants locked."""
    for variant_id, quantity in sorted(quantities.items()):
        Variant.objects.filter(pk=variant_id).update(reserved=F("reserved") - quantity)


def stock_sell(quantities: Mapping[int, int], *, order_id: UUID) -> list[StockMovement]:
    """Turns a paid order's reservation into a sale: on_hand and reserved both go down,
    and each variant gets a `sale` movement. Variants locked. A second call for the same
    order and variant fails on the ledger's unique constraint."""
    movements = []
    for variant_id, quantity in sorted(quantities.items()):
        Variant.objects.filter(pk=variant_id).update(
            on_hand=F("on_hand") - quantity, reserved=F("reserved") - quantity
        )
        on_hand = Variant.objects.values_list("on_hand", flat=True).get(pk=variant_id)
        movements.append(
            StockMovement.objects.create(
                variant_id=variant_id,
                delta=-quantity,
                on_hand_after=on_hand,
                reason=Reason.SALE,
                order_id=order_id,
            )
        )
    return movements


def stock_return(
    quantities: Mapping[int, int], *, order_id: UUID, staff_user: User | None, note: str = ""
) -> list[StockMovement]:
    """Units of an order back on the shelf (variant id -> quantity): on_hand goes up, and
    each variant gets a `return` movement linked to the order. Variants locked; how many
    units an order may return is the order's rule (orders.returns)."""
    movements = []
    for variant_id, quantity in sorted(quantities.items()):
        Variant.objects.filter(pk=variant_id).update(on_hand=F("on_hand") + quantity)
        on_hand = Variant.objects.values_list("on_hand", flat=True).get(pk=variant_id)
        movements.append(
            StockMovement.objects.create(
                variant_id=variant_id,
                delta=quantity,
                on_hand_after=on_hand,
                reason=Reason.RETURN,
                order_id=order_id,
                staff_user=staff_user,
                note=note[:500],
            )
        )
    return movements


def stock_change_check(
    variant: Variant, delta: int, reason: str, *, form_token: UUID | None = None
) -> None:
    """Raises StockChangeRefused unless staff may apply `delta` to `variant` (as read
    under its lock): a staff reason, not zero, and not below what is reserved; and
    StockChangeAlreadyRecorded when the form carrying it (`form_token`) already recorded
    its change. Under the variant's lock, a second submission waits for the first one's
    commit and then sees its movement."""
    if (
        form_token is not None
        and variant.pk is not None
        and StockMovement.objects.filter(variant_id=variant.pk, form_token=form_token).exists()
    ):
        raise StockChangeAlreadyRecorded(
            f"{variant.sku}: this stock change was already recorded (the form was sent "
            "twice); nothing was changed now. Reload the page to enter another change."
        )
    if reason not in STAFF_REASONS:
        raise StockChangeRefused(f"{reason!r} is not a reason staff can record.")
    if delta == 0:
        raise StockChangeRefused("A stock change of 0 changes nothing.")
    if variant.on_hand + delta < 0:
        raise StockChangeRefused(
            f"{variant.sku}: only {variant.on_hand} on hand, cannot remove {-delta}."
        )
    if variant.on_hand + delta < variant.reserved:
        raise StockChangeRefused(
            f"{variant.sku}: on hand would be {variant.on_hand + delta}, but pending orders"
            f" hold {variant.reserved}. At most {variant.available} can be removed now."
        )


def stock_change(
    variant: Variant,
    *,
    delta: int,
    reason: str,
    staff_user: User | None,
    note: str = "",
    form_token: UUID | None = None,
) -> StockMovement:
    """Staff's restock, adjustment or return on a locked variant: a relative change of
    on_hand plus its movement. Raises StockChangeRefused (nothing changed)."""
    stock_change_check(variant, delta, reason, form_token=form_token)
    Variant.objects.filter(pk=variant.pk).update(on_hand=F("on_hand") + delta)
    _refresh_stock(variant)
    return StockMovement.objects.create(
        variant=variant,
        delta=delta,
        on_hand_after=variant.on_hand,
        reason=reason,
        staff_user=staff_user,
        note=note,
        form_token=form_token,
    )


@transaction.atomic
def variant_stock_change(
    *,
    variant_id: int,
    delta: int,
    reason: str,
    staff_user: User | None = None,
    note: str = "",
) -> StockMovement:
    """`stock_change` in its own transaction, locking the variant first."""
    variant = variants_lock([variant_id])[variant_id]
    return stock_change(variant, delta=delta, reason=reason, staff_user=staff_user, note=note)


def stock_changes(
    deltas: Mapping[int, int], *, reason: str, staff_user: User | None = None, note: str = ""
) -> list[StockMovement]:
    """`stock_change` for many variants at once (variant id -> delta), as the demo seed
    restocks a whole catalog: one lock statement, one update and one insert instead of
    several round trips per variant. Every change is checked first; one refusal changes
    nothing. Inside atomic()."""
    variants = variants_lock(deltas)
    for variant_id, delta in deltas.items():
        stock_change_check(variants[variant_id], delta, reason)
    Variant.objects.filter(pk__in=deltas).update(
        on_hand=F("on_hand")
        + Case(
            *(When(pk=pk, then=Value(delta)) for pk, delta in deltas.items()),
            output_field=IntegerField(),
        )
    )
    return StockMovement.objects.bulk_create(
        StockMovement(
            variant_id=variant_id,
            delta=delta,
            # Read under the lock: nothing else changed on_hand in between.
            on_hand_after=variants[variant_id].on_hand + delta,
            reason=reason,
            staff_user=staff_user,
            note=note,
        )
        for variant_id, delta in sorted(deltas.items())
    )
