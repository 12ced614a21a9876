"""Checkout: an order from database prices and reserved stock, then its Stripe Checkout
Session; and the one function that applies a Checkout Session to its order, which the
webhook handlers and the landing-page sync both call."""

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from djangomart.catalog.models import Variant
from djangomart.core.errors import DomainError, NotFound
from djangomart.orders import transitions
from djangomart.orders.locks import orders_lock, variants_lock
from djangomart.orders.models import Order, OrderEvent, OrderLine
from djangomart.orders.services import order_flag, order_note
from djangomart.payments import facts, gateway, ownership

logger = logging.getLogger(__name__)


class OutOfStock(DomainError):
    status = 409
    code = "out_of_stock"


class UnknownSku(DomainError):
    status = 404
    code = "unknown_sku"


class InvalidCheckout(DomainError):
    status = 422
    code = "validation_error"


class IdempotencyKeyReused(DomainError):
    status = 409
    code = "idempotency_key_reused"
    default_message = "This Idempotency-Key was used with a different request body."


class PaymentProviderUnavailable(DomainError):
    status = 502
    code = "payment_provider_unavailable"
    default_message = "The payment provider could not be reached; the order was canceled."


@dataclass(frozen=True)
class LineWanted:
    sku: str
    quantity: int


@dataclass(frozen=True)
class CheckoutResult:
    order: Order
    checkout_url: str
    checkout_session_id: str


MAX_QUANTITY = 100


def redirect_url_check(url: str, field: str) -> str:
    """success_url / cancel_url must point at a configured frontend host. URLs that
    browsers and urlsplit could read differently (user info, backslashes, control
    characters) are refused outright."""
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or "@" in parts.netloc
        or "\\" in url
        or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url)
    ):
        raise InvalidCheckout(f"{field} must be an absolute http(s) URL.", field=field)
    if parts.hostname.lower() not in settings.CHECKOUT_REDIRECT_HOSTS:
        raise InvalidCheckout(f"{field} must be on an allowed host.", field=field)
    return url


def _fingerprint(
    email: str,
    lines: list[LineWanted],
    success_url: str,
    cancel_url: str,
    customer_id: int | None,
) -> str:
    body = json.dumps(
        [email, sorted((ln.sku, ln.quantity) for ln in lines), success_url, cancel_url, customer_id]
    )
    return hashlib.sha256(body.encode()).hexdigest()


def checkout_create(
    *,
    email: str,
    lines: list[LineWanted],
    success_url: str | None = None,
    cancel_url: str | None = None,
    idempotency_key: str | None = None,
    customer_id: int | None = None,
) -> CheckoutResult:
    """Creates (or, for a repeated Idempotency-Key, finds) the order and its Checkout
    Session. Raises OutOfStock, UnknownSku, InvalidCheckout, IdempotencyKeyReused or
    PaymentProviderUnavailable (after canceling the order)."""
    success_url = redirect_url_check(success_url or settings.CHECKOUT_SUCCESS_URL, "success_url")
    cancel_url = redirect_url_check(cancel_url or settings.CHECKOUT_CANCEL_URL, "cancel_url")
    merged: dict[str, int] = {}
    for line in lines:
        merged[line.sku] = merged.get(line.sku, 0) + line.quantity
    for sku, quantity in merged.items():
        if quantity > MAX_QUANTITY:
            raise InvalidCheckout(f"At most {MAX_QUANTITY} of {sku} per order.", sku=sku)
    wanted = [LineWanted(sku, quantity) for sku, quantity in merged.items()]
    fingerprint = _fingerprint(email, wanted, success_url, cancel_url, customer_id)
    order = _existing_for_key(idempotency_key, fingerprint)
    if order is None:
        try:
            order = _order_create(
                email=email,
                lines=wanted,
                success_url=success_url,
                cancel_url=cancel_url,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
                customer_id=customer_id,
            )
        except IntegrityError:
            # A concurrent request with the same Idempotency-Key won the insert.
            order = _existing_for_key(idempotency_key, fingerprint)
            if order is None:
                raise
    return _session_ensure(order)


def _existing_for_key(idempotency_key: str | None, fingerprint: str) -> Order | None:
    if not idempotency_key:
        return None
    order = Order.objects.filter(idempotency_key=idempotency_key).first()
    if order is not None and order.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused()
    return order


@transaction.atomic
def _order_create(
    *,
    email: str,
    lines: list[LineWanted],
    success_url: str,
    cancel_url: str,
    idempotency_key: str | None,
    fingerprint: str,
    customer_id: int | None,
) -> Order:
    found = Variant.objects.filter(sku__in=[ln.sku for ln in lines]).select_related("product")
    by_sku = {v.sku: v for v in found}
    for line in lines:
        variant = by_sku.get(line.sku)
        if variant is None or not variant.active or not variant.product.active:
            raise UnknownSku(f"Unknown SKU {line.sku!r}.", sku=line.sku)
    locked = variants_lock(v.pk for v in by_sku.values())
    currencies = {v.currency for v in locked.values()}
    if len(currencies) != 1:
        raise InvalidCheckout("All items of one order must be priced in one currency.")
    for line in lines:
        variant = locked[by_sku[line.sku].pk]
        if variant.stock_on_hand < line.quantity:
            raise OutOfStock(
                f"Only {variant.stock_on_hand} of {line.sku} left.",
                sku=line.sku,
                available=variant.stock_on_hand,
            )
    subtotal = sum(locked[by_sku[ln.sku].pk].price * ln.quantity for ln in lines)
    now = timezone.now()
    order = Order.objects.create(
        email=email,
        customer_id=customer_id,
        currency=currencies.pop(),
        subtotal=subtotal,
        total=subtotal,
        expires_at=(now + timedelta(minutes=settings.CHECKOUT_EXPIRY_MINUTES)).replace(
            microsecond=0
        ),
        success_url=success_url,
        cancel_url=cancel_url,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
    )
    for line in lines:
        variant = locked[by_sku[line.sku].pk]
        OrderLine.objects.create(
            order=order,
            variant=variant,
            sku=variant.sku,
            name=f"{variant.product.name} {variant.label}".strip(),
            unit_price=variant.price,
            quantity=line.quantity,
            line_total=variant.price * line.quantity,
        )
        Variant.objects.filter(pk=variant.pk).update(
            stock_on_hand=F("stock_on_hand") - line.quantity
        )
    order_note(order, OrderEvent.Kind.CREATED, "Order created; stock reserved.")
    return order


def _session_ensure(order: Order) -> CheckoutResult:
    """Creates the order's Checkout Session unless it has one. No lock is held during the
    Stripe call; the idempotency key makes a repeated call return the same session."""
    if order.stripe_checkout_session_id and order.checkout_url:
        return CheckoutResult(order, order.checkout_url, order.stripe_checkout_session_id)
    if not order.is_pending():
        raise PaymentProviderUnavailable(id=str(order.id), access_token=order.access_token)
    lines = [
        gateway.CheckoutLine(name=ln.name, unit_amount=ln.unit_price, quantity=ln.quantity)
        for ln in order.lines.order_by("pk")
    ]
    try:
        session = gateway.checkout_session_create(
            order_id=str(order.id),
            email=order.email,
            currency=order.currency,
            lines=lines,
            success_url=order.success_url,
            cancel_url=order.cancel_url,
            expires_at=int(order.expires_at.timestamp()),
        )
    except gateway.GatewayError as exc:
        logger.warning(
            "checkout session creation failed", extra={"order_id": str(order.id), "error": str(exc)}
        )
        current = _order_cancel_unless_session(order.pk, reason=f"Payment provider error: {exc}")
        if current.stripe_checkout_session_id and current.checkout_url:
            # A concurrent retry of the same checkout got the session: answer with it.
            return CheckoutResult(current, current.checkout_url, current.stripe_checkout_session_id)
        raise PaymentProviderUnavailable(id=str(order.id), access_token=order.access_token) from exc
    with transaction.atomic():
        locked = orders_lock([order.pk])[order.pk]
        if locked.stripe_checkout_session_id is None and locked.is_pending():
            locked.stripe_checkout_session_id = session.id
            locked.checkout_url = session.url
            locked.save(update_fields=["stripe_checkout_session_id", "checkout_url", "updated_at"])
            order_note(
                locked,
                OrderEvent.Kind.CHECKOUT_SESSION_CREATED,
                "Stripe Checkout Session created.",
                session_id=session.id,
            )
        if locked.stripe_checkout_session_id:
            return CheckoutResult(locked, locked.checkout_url, locked.stripe_checkout_session_id)
    # A concurrent retry gave up on Stripe and canceled the order while this call was
    # creating the session: nobody may pay it.
    try:
        gateway.checkout_session_expire(session.id)
    except gateway.GatewayError:
        logger.exception(
            "could not expire the session of a canceled order",
            extra={"order_id": str(order.id), "session_id": session.id},
        )
    raise PaymentProviderUnavailable(id=str(order.id), access_token=order.access_token)


@transaction.atomic
def _order_cancel_unless_session(order_id: UUID, *, reason: str) -> Order:
    """Cancels the order (giving its stock back) unless it got a session meanwhile."""
    order = orders_lock([order_id])[order_id]
    if not order.stripe_checkout_session_id and order.is_pending():
        transitions.apply(order, Order.Status.CANCELED, message=reason)
    return order


def checkout_session_apply(
    order: Order, session: dict[str, Any], *, stripe_event_id: str = ""
) -> None:
    """Brings a (locked) order in line with what its Checkout Session says now. Without a
    Stripe event (the sync), applying what is already known writes nothing.

    Only the order's own session is applied (payments.ownership): any other one, even
    carrying the order's id, only flags the order `foreign_session` for staff.
    """
    if not ownership.session_is_own(order, session):
        order_flag(
            order,
            "foreign_session",
            stripe_event_id=stripe_event_id,
            message=f"Checkout Session {session.get('id')} is not this order's own session; "
            "not applied.",
        )
        return
    raw_intent = session.get("payment_intent")
    intent_id = raw_intent if isinstance(raw_intent, str) and raw_intent else None
    facts.session_link(order, session.get("id"))
    status, payment_status = session.get("status"), session.get("payment_status")
    if status == "complete" and payment_status == "paid":
        if intent_id is None:
            order_flag(
                order,
                "payment_without_intent",
                stripe_event_id=stripe_event_id,
                message="A paid Checkout Session names no PaymentIntent.",
            )
            return
        facts.payment_succeeded(
            order,
            intent_id=intent_id,
            amount=int(session.get("amount_total") or 0),
            currency=str(session.get("currency") or ""),
            stripe_event_id=stripe_event_id,
        )
    elif status == "complete" and payment_status == "unpaid":
        facts.payment_processing(order, intent_id=intent_id, stripe_event_id=stripe_event_id)
    elif status == "expired" and (stripe_event_id or order.is_pending()):
        facts.payment_intent_adopt(order, intent_id)
        transitions.apply(order, Order.Status.EXPIRED, stripe_event_id=stripe_event_id)
    # An open session: the customer is still paying; nothing to apply.


class NoCheckoutSession(DomainError):
    status = 409
    code = "no_checkout_session"
    default_message = "This order has no Checkout Session to synchronise."


def order_sync(*, order_id: UUID) -> Order:
    """The landing page's instant answer: re-reads the session from Stripe (no lock
    held) and applies it with the same function the webhook uses."""
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        raise NotFound("No such order.")
    if not order.stripe_checkout_session_id:
        raise NoCheckoutSession()
    try:
        session = gateway.checkout_session_retrieve(order.stripe_checkout_session_id)
    except gateway.GatewayError as exc:
        raise PaymentProviderUnavailable("The payment provider could not be reached.") from exc
    with transaction.atomic():
        locked = orders_lock([order_id])[order_id]
        checkout_session_apply(locked, session)
    return locked
