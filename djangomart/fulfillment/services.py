"""Shipments (docs/fulfillment.md). A shipment is decided under the order's row lock:
what is left to ship is read under it, so two requests for the last units of a line
cannot both ship them (and the line's check constraint is the database's last word).

Refusals (DomainError, nothing written):
- never overridable: bad lines (422), more than is left to ship (409
  `shipment_exceeds_remaining`), an order that is not paid (409 `order_not_paid`; a
  fulfilled one is 409 `order_fulfilled`);
- overridable by a human (override=True, the admin's confirmation page, recorded on
  the timeline and the shipment): the money is all refunded (409 `order_refunded`), a
  dispute is open (409 `order_disputed`), a dispute was lost (409 `order_dispute_lost`:
  the bank took money back; lost money is not a refund, so `payment_status` still says
  `paid`). Such errors say `"overridable": true`.
"""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from djangomart.core.errors import DomainError, NotFound
from djangomart.fulfillment.models import Shipment, ShipmentLine
from djangomart.fulfillment.selectors import shipment_with_lines
from djangomart.notify.events import EventType
from djangomart.notify.services import notify_enqueue
from djangomart.orders import idempotency
from djangomart.orders.fulfillment_state import fulfillment_complete, fulfillment_status_refresh
from djangomart.orders.lines import LineQuantity, LineRef, line_quantities_resolve
from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order, OrderEvent, OrderLine
from djangomart.orders.services import order_note

CARRIER_MAX_LENGTH = 100
TRACKING_NUMBER_MAX_LENGTH = 200
TRACKING_URL_MAX_LENGTH = 2000
OVERRIDE_REASON_MAX_LENGTH = 500


class ShipmentInvalid(DomainError):
    """A field that does not read (carrier, tracking): 422, nothing changed."""

    status = 422
    code = "validation_error"

    def __init__(self, message: str, *, location: str) -> None:
        details = [{"location": location, "message": message, "type": "value_error"}]
        super().__init__(message, details=details)


class ShipmentRefused(DomainError):
    status = 409
    code = "shipment_refused"
    # Whether a human may ship anyway (override=True, from the admin).
    overridable = False

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        super().__init__(message, overridable=self.overridable, **extra)


class OrderNotPaid(ShipmentRefused):
    code = "order_not_paid"
    default_message = "The order is not paid: only a paid order ships."


class OrderFulfilled(ShipmentRefused):
    code = "order_fulfilled"
    default_message = "Every unit of this order has shipped already."


class ShipmentExceedsRemaining(ShipmentRefused):
    code = "shipment_exceeds_remaining"


class OrderRefunded(ShipmentRefused):
    code = "order_refunded"
    overridable = True
    default_message = (
        "All the money paid for this order was refunded: shipping it would give the goods away."
    )


class OrderDisputed(ShipmentRefused):
    code = "order_disputed"
    overridable = True
    default_message = (
        "A dispute of this order's payment is open: the bank may take the money back; ship "
        "only if you mean to fight the dispute with proof of delivery."
    )


class OrderDisputeLost(ShipmentRefused):
    code = "order_dispute_lost"
    overridable = True
    default_message = (
        "A dispute of this order's payment was lost: the bank took the money back; "
        "shipping it would give the goods away."
    )


class IdempotencyKeyReused(idempotency.IdempotencyKeyReused):
    default_message = (
        "This Idempotency-Key was already used for another shipment of this order (other "
        "lines, carrier or tracking)."
    )


@dataclass(frozen=True)
class ShipmentOutcome:
    shipment: Shipment
    # False: the shipment an earlier request with the same Idempotency-Key made.
    created: bool


def _text(value: str | None, *, location: str, max_length: int, required: bool = False) -> str:
    value = (value or "").strip()
    if required and not value:
        raise ShipmentInvalid("Required.", location=location)
    if len(value) > max_length:
        raise ShipmentInvalid(f"At most {max_length} characters.", location=location)
    if "\x00" in value:
        raise ShipmentInvalid("Contains a NUL character.", location=location)
    return value


def _tracking_url(value: str | None) -> str:
    url = _text(value, location="tracking_url", max_length=TRACKING_URL_MAX_LENGTH)
    if url and not url.lower().startswith(("https://", "http://")):
        # Shown to customers as a link: never a javascript: or data: one.
        raise ShipmentInvalid("An http(s) URL, or nothing.", location="tracking_url")
    return url


def shipment_refusals(order: Order) -> list[ShipmentRefused]:
    """Why `order` (as read, under its lock to decide) may not ship now, the refusals a
    human can never override first. Empty: it may."""
    if order.status == Order.Status.FULFILLED:
        return [OrderFulfilled()]
    if order.status != Order.Status.PAID:
        return [OrderNotPaid(f"The order is {order.status}: only a paid order ships.")]
    refusals: list[ShipmentRefused] = []
    if order.payment_status == Order.PaymentStatus.REFUNDED:
        refusals.append(OrderRefunded())
    if order.disputed:
        refusals.append(OrderDisputed())
    if order.dispute_lost:
        refusals.append(
            OrderDisputeLost(
                "A dispute of this order's payment was lost: the bank took back "
                f"{order.amount_lost_to_disputes} (minor units of {order.currency}) of "
                f"{order.total}; shipping it would give those goods away."
            )
        )
    return refusals


def _check_quantities(wanted: list[LineQuantity]) -> None:
    for index, item in enumerate(wanted):
        left = item.line.quantity_to_ship
        if item.quantity > left:
            raise ShipmentExceedsRemaining(
                f"{item.line.sku}: {item.quantity} cannot ship, only {left} of "
                f"{item.line.quantity} {'is' if left == 1 else 'are'} left to ship.",
                location=f"lines.{index}.quantity",
                sku=item.line.sku,
                remaining=left,
            )


def shipment_public(shipment: Shipment) -> dict[str, Any]:
    """`shipment` (with its lines: selectors.shipment_with_lines) in outbox payloads
    (`shipment.created`), the contract with emails and outbound webhooks: {"id",
    "carrier", "tracking_number", "tracking_url", "shipped_at", "lines": [{"sku", "name",
    "quantity"}]}."""
    return {
        "id": str(shipment.pk),
        "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number,
        "tracking_url": shipment.tracking_url,
        "shipped_at": shipment.shipped_at.isoformat(),
        "lines": [
            {"sku": sl.order_line.sku, "name": sl.order_line.name, "quantity": sl.quantity}
            for sl in shipment.lines.all()
        ],
    }


@dataclass(frozen=True)
class _Ask:
    refs: tuple[LineRef, ...]
    carrier: str
    tracking_number: str
    tracking_url: str
    shipped_at: datetime | None
    user: User | None
    override: bool
    override_reason: str
    key: str | None
    fingerprint: str


def shipment_create(
    *,
    order_id: UUID,
    lines: Iterable[LineRef],
    carrier: str,
    tracking_number: str = "",
    tracking_url: str = "",
    user: User | None,
    override: bool = False,
    override_reason: str = "",
    shipped_at: datetime | None = None,
    idempotency_key: str | None = None,
) -> ShipmentOutcome:
    """Ships `lines` (order line id or SKU, quantity) of the order: a Shipment with its
    lines, the lines' quantity_shipped, a timeline entry, `shipment.created` in the
    outbox (cause: the shipment's id), the order's fulfillment_status, and, when every
    unit left to ship has shipped, the order `fulfilled` (order.fulfilled).

    `override` ships despite the overridable refusals (refunded, disputed): only a
    human who confirmed it, with `override_reason` for the timeline. The same
    `idempotency_key` with the same body returns the first shipment (created False).

    Raises NotFound, LinesInvalid, ShipmentInvalid, ShipmentRefused (its subclasses),
    IdempotencyKeyReused: nothing changed."""
    refs = tuple(lines)
    if shipped_at is not None and timezone.is_naive(shipped_at):
        raise ShipmentInvalid(
            "A time with its UTC offset (2026-05-01T14:00:00Z).", location="shipped_at"
        )
    ask = _Ask(
        refs=refs,
        carrier=_text(carrier, location="carrier", max_length=CARRIER_MAX_LENGTH, required=True),
        tracking_number=_text(
            tracking_number, location="tracking_number", max_length=TRACKING_NUMBER_MAX_LENGTH
        ),
        tracking_url=_tracking_url(tracking_url),
        shipped_at=shipped_at,
        user=user,
        override=override,
        override_reason=_text(
            override_reason, location="override_reason", max_length=OVERRIDE_REASON_MAX_LENGTH
        ),
        key=idempotency.idempotency_key_check(idempotency_key),
        fingerprint="",
    )
    fingerprint = idempotency.request_fingerprint(
        lines=[[ref, quantity] for ref, quantity in refs],
        carrier=ask.carrier,
        tracking_number=ask.tracking_number,
        tracking_url=ask.tracking_url,
        shipped_at=shipped_at.isoformat() if shipped_at else None,
    )
    ask = replace(ask, fingerprint=fingerprint)
    try:
        return _create_locked(order_id, ask)
    except IntegrityError:
        # The key's advisory lock serializes requests with one key; this is the
        # database's last word (shipment_unique_idempotency_key).
        if ask.key is None:
            raise
        existing = Shipment.objects.filter(order_id=order_id, idempotency_key=ask.key).first()
        if existing is None:
            raise
        return _replay(existing, ask)


def _replay(existing: Shipment, ask: _Ask) -> ShipmentOutcome:
    if existing.request_fingerprint != ask.fingerprint:
        raise IdempotencyKeyReused()
    return ShipmentOutcome(existing, created=False)


@transaction.atomic
def _create_locked(order_id: UUID, ask: _Ask) -> ShipmentOutcome:
    if ask.key is not None:
        idempotency.order_key_lock("shipment", order_id, ask.key)  # before the order lock
    order = orders_lock([order_id]).get(order_id)
    if order is None:
        raise NotFound("No such order.")
    if ask.key is not None:
        existing = Shipment.objects.filter(order=order, idempotency_key=ask.key).first()
        if existing is not None:
            return _replay(existing, ask)
    wanted = line_quantities_resolve(order, ask.refs)
    refusals = shipment_refusals(order)
    blocking = [r for r in refusals if not (ask.override and r.overridable)]
    if blocking:
        raise blocking[0]
    _check_quantities(wanted)
    overridden = [r.code for r in refusals]
    shipment = Shipment.objects.create(
        order=order,
        carrier=ask.carrier,
        tracking_number=ask.tracking_number,
        tracking_url=ask.tracking_url,
        shipped_at=ask.shipped_at or timezone.now(),
        staff_user=ask.user,
        override={"refusals": overridden, "reason": ask.override_reason} if overridden else {},
        idempotency_key=ask.key,
        request_fingerprint=ask.fingerprint,
    )
    ShipmentLine.objects.bulk_create(
        ShipmentLine(shipment=shipment, order_line=item.line, quantity=item.quantity)
        for item in wanted
    )
    for item in wanted:
        # Relative: the constraint (shipped + withdrawn <= quantity) checks the sum.
        OrderLine.objects.filter(pk=item.line.pk).update(
            quantity_shipped=F("quantity_shipped") + item.quantity
        )
    _timeline(order, shipment, wanted, ask, overridden)
    # The shipment's event shows the order with this shipment counted; the order's move
    # to `fulfilled` (order.fulfilled) comes after it.
    fulfillment_status_refresh(order)
    payload = shipment_public(shipment_with_lines(shipment))
    notify_enqueue(
        EventType.SHIPMENT_CREATED, order, cause=str(shipment.pk), objects={"shipment": payload}
    )
    fulfillment_complete(
        order,
        staff_user=ask.user,
        message="Every unit has shipped.",
        data={"shipment_id": str(shipment.pk)},
    )
    return ShipmentOutcome(shipment, created=True)


def _timeline(
    order: Order, shipment: Shipment, wanted: list[LineQuantity], ask: _Ask, overridden: list[str]
) -> None:
    who = ask.user.get_username() if ask.user is not None else "staff"
    what = ", ".join(f"{item.quantity} x {item.line.sku}" for item in wanted)
    tracking = f", tracking {shipment.tracking_number}" if shipment.tracking_number else ""
    message = f"Shipped by {who} with {shipment.carrier}{tracking}: {what}."
    if overridden:
        why = f": {ask.override_reason}" if ask.override_reason else "."
        message += f" Shipped despite {', '.join(overridden)} (confirmed by {who}){why}"
    order_note(
        order,
        OrderEvent.Kind.SHIPMENT,
        message,
        staff_user=ask.user,
        shipment_id=str(shipment.pk),
        lines=[{"sku": item.line.sku, "quantity": item.quantity} for item in wanted],
        overridden=overridden,
    )
