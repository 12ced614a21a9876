"""Checkout: an order from database prices and reserved stock, then its Stripe Checkout
Session; and the one function that applies a Checkout Session to its order, which the
webhook handlers and the landing-page sync both call."""

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import JsonResponse
from django.utils import timezone

from djangomart.catalog.models import Variant
from djangomart.catalog.services import stock_reserve
from djangomart.core.errors import DomainError, NotFound
from djangomart.core.metrics import CHECKOUTS
from djangomart.core.redirects import RedirectProblem, redirect_url_problem
from djangomart.orders import transitions
from djangomart.orders.locks import idempotency_key_lock, orders_lock, variants_lock
from djangomart.orders.models import Order, OrderEvent, OrderLine
from djangomart.orders.services import order_flag, order_note
from djangomart.payments import facts, gateway, ownership

logger = logging.getLogger(__name__)


class OutOfStock(DomainError):
    status = 409
    code = "out_of_stock"


def out_of_stock_message(sku: str, available: int) -> str:
    if available <= 0:
        return f"{sku} is out of stock."
    return f"Only {available} of {sku} {'is' if available == 1 else 'are'} available."


class UnknownSku(DomainError):
    status = 404
    code = "unknown_sku"


class InvalidCheckout(DomainError):
    """A request the schema accepts but the shop refuses; `location` names the input in
    `details`, as for every validation error."""

    status = 422
    code = "validation_error"

    def __init__(
        self, message: str, *, location: str = "body", kind: str = "value_error", **extra: Any
    ) -> None:
        details = [{"location": location, "message": message, "type": kind}]
        super().__init__(message, details=details, **extra)


class IdempotencyKeyReused(DomainError):
    status = 409
    code = "idempotency_key_reused"
    default_message = "This Idempotency-Key was used with a different request body."


class PaymentProviderError(DomainError):
    """Base of the answers that come from talking to Stripe (docs/payments.md, "Talking
    to Stripe"); callers that only want to carry on (reconciliation) catch this."""

    status = 502
    code = "payment_provider_error"


class PaymentProviderUnavailable(PaymentProviderError):
    """An outage: Stripe could not be reached, timed out, failed or rate limited us."""

    status = 502
    code = "payment_provider_unavailable"
    default_message = "The payment provider could not be reached; the order was canceled."


class PaymentProviderRejected(PaymentProviderError):
    """Stripe refused the request (a 4xx: e.g. an amount under its minimum charge, or a
    configuration problem). Retrying the same checkout will not help."""

    status = 502
    code = "payment_provider_rejected"
    default_message = "The payment provider refused this checkout; the order was canceled."


class CheckoutInProgress(PaymentProviderError):
    """Another request for this order (same Idempotency-Key) is still creating its
    Checkout Session at Stripe. Nothing was canceled; retry after `retry_after`."""

    status = 409
    code = "checkout_in_progress"
    default_message = (
        "This checkout is still being created by an earlier request; retry shortly with "
        "the same Idempotency-Key."
    )
    retry_after = 2

    def as_response(self) -> JsonResponse:
        response = super().as_response()
        response["Retry-After"] = str(self.retry_after)
        return response


class CheckoutSessionUnknown(PaymentProviderError):
    """Stripe answers that it does not know the order's Checkout Session (404
    resource_missing): another account or mode's key, or a session from another Stripe."""

    status = 409
    code = "checkout_session_unknown"
    default_message = "The payment provider does not know this order's Checkout Session."


class OrderClosed(DomainError):
    """A retry (same Idempotency-Key) of a checkout whose order ended otherwise than paid:
    expired, canceled (by staff, or after a Checkout Session that was never created) or
    failed. Stripe is not asked again; a new checkout needs a new key."""

    status = 409
    code = "order_closed"


# Why checkout canceled an order, in its cancel transition's OrderEvent.data["cause"], so
# that a retry with the same Idempotency-Key is answered as the first request was.
CAUSE_PROVIDER_REJECTED = "provider_rejected"
CAUSE_PROVIDER_UNAVAILABLE = "provider_unavailable"


# Stripe wants a session's expires_at 30 minutes to 24 hours after it creates the session.
# The session is created a moment after the order (longer when Stripe is slow, or when a
# client retries after 409 checkout_in_progress), and our clock may be a little ahead of
# or behind Stripe's; every attempt must send the same expires_at (same idempotency key,
# identical parameters). So expires_at is fixed once, at order creation, with a margin at
# both ends: CHECKOUT_EXPIRY_MINUTES, but at least 30 + 5 minutes and at most 24 hours - 5
# minutes. A retry later than the margin is answered by Stripe from its idempotency store
# if the session was made, or refused (payment_provider_rejected, the order canceled) if
# it never was.
CHECKOUT_SESSION_MARGIN = timedelta(minutes=5)
STRIPE_SESSION_MIN_LIFETIME = timedelta(minutes=30)
STRIPE_SESSION_MAX_LIFETIME = timedelta(hours=24)


def checkout_expires_at(created: datetime) -> datetime:
    """When an order created at `created` and its Checkout Session expire (whole seconds,
    as Stripe's expires_at)."""
    lifetime = min(
        max(
            timedelta(minutes=settings.CHECKOUT_EXPIRY_MINUTES),
            STRIPE_SESSION_MIN_LIFETIME + CHECKOUT_SESSION_MARGIN,
        ),
        STRIPE_SESSION_MAX_LIFETIME - CHECKOUT_SESSION_MARGIN,
    )
    return (created + lifetime).replace(microsecond=0)


@dataclass(frozen=True)
class LineWanted:
    sku: str
    quantity: int


@dataclass(frozen=True)
class CheckoutResult:
    order: Order
    checkout_url: str
    checkout_session_id: str
    # This request created the Checkout Session (else it answered an earlier one's).
    created: bool = False


MAX_QUANTITY = 100

# Idempotency keys live as long as Stripe's: after 24 hours the same key is a new request.
IDEMPOTENCY_KEY_TTL = timedelta(hours=24)
# A guest's key is the only proof of who sent the first request (its answer carries the
# order's access_token), so it must be hard to guess.
GUEST_IDEMPOTENCY_KEY_MIN_LENGTH = 16
IDEMPOTENCY_KEY_LOCATION = "header.Idempotency-Key"


# What a client is told about each problem with its success_url / cancel_url: the
# message (with the field's name) and the `type` in `details`.
_REDIRECT_PROBLEMS = {
    RedirectProblem.NOT_ABSOLUTE: ("{field} must be an absolute http(s) URL.", "url"),
    RedirectProblem.NOT_ASCII: (
        "{field} must be an absolute http(s) URL in ASCII: percent-encode other characters.",
        "url",
    ),
    RedirectProblem.OTHER_HOST: ("{field} must be on an allowed host.", "url_host"),
}


def redirect_url_check(url: str, field: str) -> str:
    """success_url / cancel_url must point at a configured frontend host (the rule:
    core.redirects, which settings.py also applies to the defaults at start)."""
    problem = redirect_url_problem(url, settings.CHECKOUT_REDIRECT_HOSTS)
    if problem is not None:
        message, kind = _REDIRECT_PROBLEMS[problem]
        raise InvalidCheckout(message.format(field=field), location=field, kind=kind, field=field)
    return url


def redirect_url_pattern() -> str:
    """The URLs redirect_url_check accepts, as a regular expression for the OpenAPI schema
    (a subset: it spells hosts in lowercase and ports in up to 4 digits)."""
    hosts = "|".join(re.escape(host) for host in dict.fromkeys(settings.CHECKOUT_REDIRECT_HOSTS))
    # After the host: printable ASCII without space or backslash.
    return rf"^https?://(?:{hosts})(?::[0-9]{{1,4}})?(?:[/?#][!-\[\]-~]*)?$"


def _idempotency_key_stored(idempotency_key: str | None, customer_id: int | None) -> str | None:
    """What the order stores for the client's Idempotency-Key: a hash of the key within its
    scope (the customer, or all guests), so that two customers' equal keys are two orders
    and a guest's key, a secret, is never stored in clear. Raises InvalidCheckout for a
    guest key that is too short to be a secret."""
    if not idempotency_key:
        return None
    if customer_id is None and len(idempotency_key) < GUEST_IDEMPOTENCY_KEY_MIN_LENGTH:
        raise InvalidCheckout(
            f"A guest's Idempotency-Key must have at least {GUEST_IDEMPOTENCY_KEY_MIN_LENGTH} "
            "characters (use a random value such as a UUID4).",
            location=IDEMPOTENCY_KEY_LOCATION,
            kind="string_too_short",
        )
    scope = "guest" if customer_id is None else f"customer:{customer_id}"
    return hashlib.sha256(f"{scope}:{idempotency_key}".encode()).hexdigest()


def _fingerprint(
    email: str,
    lines: list[LineWanted],
    success_url: str,
    cancel_url: str,
    customer_id: int | None,
    shipping_address: dict[str, str] | None = None,
) -> str:
    parts: list[Any] = [
        email,
        sorted((ln.sku, ln.quantity) for ln in lines),
        success_url,
        cancel_url,
        customer_id,
    ]
    # Only when given, so that a request without an address keeps the fingerprint it had
    # before addresses existed (a retry across the deploy is still the same request).
    if shipping_address is not None:
        parts.append(sorted(shipping_address.items()))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def checkout_create(
    *,
    email: str,
    lines: list[LineWanted],
    success_url: str | None = None,
    cancel_url: str | None = None,
    idempotency_key: str | None = None,
    customer_id: int | None = None,
    shipping_address: dict[str, str] | None = None,
) -> CheckoutResult:
    """Creates (or, for a repeated Idempotency-Key, finds) the order and its Checkout
    Session. `shipping_address` is the snapshot the order keeps (from
    accounts.addresses.address_snapshot_for_checkout; None for none); it is part of the
    request, so the same Idempotency-Key with another address is IdempotencyKeyReused.
    Raises OutOfStock, UnknownSku, InvalidCheckout, IdempotencyKeyReused,
    PaymentProviderUnavailable or PaymentProviderRejected (after canceling the order),
    CheckoutInProgress, or OrderClosed (a retry of an order that ended unpaid). Each
    call is counted by its outcome (djangomart_checkouts_total, docs/operations.md)."""
    try:
        result = _checkout_create(
            email=email,
            lines=lines,
            success_url=success_url,
            cancel_url=cancel_url,
            idempotency_key=idempotency_key,
            customer_id=customer_id,
            shipping_address=shipping_address,
        )
    except PaymentProviderError as exc:
        CHECKOUTS.labels("stripe_error", exc.code).inc()
        raise
    except DomainError as exc:
        CHECKOUTS.labels("refused", exc.code).inc()
        raise
    except Exception as exc:
        CHECKOUTS.labels("error", type(exc).__name__).inc()
        raise
    CHECKOUTS.labels("created" if result.created else "replayed", "").inc()
    return result


def _checkout_create(
    *,
    email: str,
    lines: list[LineWanted],
    success_url: str | None,
    cancel_url: str | None,
    idempotency_key: str | None,
    customer_id: int | None,
    shipping_address: dict[str, str] | None,
) -> CheckoutResult:
    idempotency_key = _idempotency_key_stored(idempotency_key, customer_id)
    # Only an absent URL means the default: an empty one is a bad one.
    success_url = redirect_url_check(
        settings.CHECKOUT_SUCCESS_URL if success_url is None else success_url, "success_url"
    )
    cancel_url = redirect_url_check(
        settings.CHECKOUT_CANCEL_URL if cancel_url is None else cancel_url, "cancel_url"
    )
    merged: dict[str, int] = {}
    for line in lines:
        merged[line.sku] = merged.get(line.sku, 0) + line.quantity
    for sku, quantity in merged.items():
        if quantity > MAX_QUANTITY:
            raise InvalidCheckout(
                f"At most {MAX_QUANTITY} of {sku} per order.", location="lines", sku=sku
            )
    wanted = [LineWanted(sku, quantity) for sku, quantity in merged.items()]
    fingerprint = _fingerprint(
        email, wanted, success_url, cancel_url, customer_id, shipping_address
    )
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
                shipping_address=shipping_address,
            )
        except IntegrityError:
            # A concurrent request with the same Idempotency-Key won the insert (the key
            # lock in _order_create serializes them; this is the database's last word).
            order = _existing_for_key(idempotency_key, fingerprint)
            if order is None:
                raise
    return _session_ensure(order)


def _existing_for_key(idempotency_key: str | None, fingerprint: str) -> Order | None:
    """The order of a stored (scoped, hashed) key younger than IDEMPOTENCY_KEY_TTL.
    Raises IdempotencyKeyReused when the key came with another request body."""
    if not idempotency_key:
        return None
    order = Order.objects.filter(idempotency_key=idempotency_key).first()
    if order is None:
        return None
    if order.created_at <= timezone.now() - IDEMPOTENCY_KEY_TTL:
        # Expired: the old order lets go of the key (the column is unique) so that the
        # request starts a new order. A concurrent request doing the same meets the
        # new order through checkout_create's IntegrityError path.
        Order.objects.filter(pk=order.pk, idempotency_key=idempotency_key).update(
            idempotency_key=None
        )
        return None
    if order.request_fingerprint != fingerprint:
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
    shipping_address: dict[str, str] | None = None,
) -> Order:
    if idempotency_key:
        # A double-click: both requests missed the key. Without this lock the second
        # would wait for the variants, then find the first's reservation and answer
        # out_of_stock for the very units it reserved; with it, it finds the order.
        idempotency_key_lock(idempotency_key)
        existing = _existing_for_key(idempotency_key, fingerprint)
        if existing is not None:
            return existing
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
        # Read under the lock: nobody else can reserve these units until we commit.
        variant = locked[by_sku[line.sku].pk]
        if variant.available < line.quantity:
            raise OutOfStock(
                out_of_stock_message(line.sku, variant.available),
                sku=line.sku,
                available=variant.available,
            )
    subtotal = sum(locked[by_sku[ln.sku].pk].price * ln.quantity for ln in lines)
    now = timezone.now()
    order = Order.objects.create(
        email=email,
        customer_id=customer_id,
        shipping_address=shipping_address,
        currency=currencies.pop(),
        subtotal=subtotal,
        total=subtotal,
        expires_at=checkout_expires_at(now),
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
    stock_reserve({by_sku[ln.sku].pk: ln.quantity for ln in lines})
    order_note(order, OrderEvent.Kind.CREATED, "Order created; stock reserved.")
    return order


# Orders whose checkout answer is still the order and its session (201): pending (the
# customer may still pay), or paid (the answer says so in `order.status`).
_ANSWERED = frozenset({Order.Status.PENDING, Order.Status.PAID, Order.Status.FULFILLED})


def _closed_error(order: Order) -> DomainError:
    """The answer to a retry of the checkout of an order that ended unpaid: the first
    request's own answer when checkout canceled it (Stripe refused, or was down), else
    409 order_closed naming the status."""
    ids = {"id": str(order.id), "access_token": order.access_token}
    if order.status == Order.Status.CANCELED:
        event = (
            OrderEvent.objects.filter(
                order=order, kind=OrderEvent.Kind.TRANSITION, to_status=Order.Status.CANCELED
            )
            .order_by("-pk")
            .first()
        )
        data = event.data if event is not None and isinstance(event.data, dict) else {}
        if data.get("cause") == CAUSE_PROVIDER_REJECTED:
            return PaymentProviderRejected(**ids, provider_code=data.get("provider_code"))
        if data.get("cause") == CAUSE_PROVIDER_UNAVAILABLE:
            return PaymentProviderUnavailable(**ids)
    if order.status in _ANSWERED:  # paid without a Checkout Session (accepted by staff)
        message = f"This order is already {order.status}."
    else:
        message = (
            f"This order is {order.status} and can no longer be paid; start a new checkout "
            "with a new Idempotency-Key."
        )
    return OrderClosed(message, **ids, order_status=order.status)


def _session_ensure(order: Order) -> CheckoutResult:
    """Creates the order's Checkout Session unless it has one. No lock is held during the
    Stripe call; the idempotency key makes a repeated call return the same session."""
    if order.stripe_checkout_session_id and order.checkout_url and order.status in _ANSWERED:
        return CheckoutResult(order, order.checkout_url, order.stripe_checkout_session_id)
    if not order.is_pending():
        raise _closed_error(order)
    # One budget for every Stripe call of this request (the session, and expiring it
    # again if the order was canceled meanwhile), so that the request ends inside the web
    # worker's timeout (settings.py checks the arithmetic).
    with gateway.budget():
        return _session_create(order)


def _session_create(order: Order) -> CheckoutResult:
    """_session_ensure's Stripe part, for a pending order without a session."""
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
    except gateway.GatewayIdempotencyInUse as exc:
        # A double-click while Stripe is slow: the other request is creating this very
        # session (same key). Never cancel; answer with its session if it is stored now.
        current = Order.objects.get(pk=order.pk)
        logger.info(
            "checkout session still being created by another request",
            extra={"order_id": str(order.id), **exc.log_fields()},
        )
        if current.stripe_checkout_session_id and current.checkout_url:
            return CheckoutResult(current, current.checkout_url, current.stripe_checkout_session_id)
        if not current.is_pending():  # the other request gave up on Stripe meanwhile
            raise _closed_error(current) from exc
        raise CheckoutInProgress(id=str(order.id), access_token=order.access_token) from exc
    except gateway.GatewayError as exc:
        rejected = isinstance(exc, gateway.GatewayRejected)
        logger.warning(
            "checkout session refused by Stripe; canceling the order"
            if rejected
            else "Stripe unavailable for the checkout session; canceling the order",
            extra={"order_id": str(order.id), **exc.log_fields()},
        )
        what = "refused" if rejected else "unavailable"
        cause: dict[str, Any] = (
            {"cause": CAUSE_PROVIDER_REJECTED, "provider_code": exc.code}
            if rejected
            else {"cause": CAUSE_PROVIDER_UNAVAILABLE}
        )
        current = _order_cancel_unless_session(
            order.pk,
            reason=f"Payment provider {what}: {exc.message}",
            cause=cause,
            key_release=not rejected,
        )
        if current.stripe_checkout_session_id and current.checkout_url:
            # A concurrent retry of the same checkout got the session: answer with it.
            return CheckoutResult(current, current.checkout_url, current.stripe_checkout_session_id)
        if rejected:
            raise PaymentProviderRejected(
                id=str(order.id), access_token=order.access_token, provider_code=exc.code
            ) from exc
        raise PaymentProviderUnavailable(id=str(order.id), access_token=order.access_token) from exc
    with transaction.atomic():
        locked = orders_lock([order.pk])[order.pk]
        stored = locked.stripe_checkout_session_id is None and locked.is_pending()
        if stored:
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
            return CheckoutResult(
                locked, locked.checkout_url, locked.stripe_checkout_session_id, created=stored
            )
    # A concurrent retry gave up on Stripe (or staff canceled the order) while this call
    # was creating the session: nobody may pay it.
    try:
        gateway.checkout_session_expire(session.id)
    except gateway.GatewayError:
        logger.exception(
            "could not expire the session of a canceled order",
            extra={"order_id": str(order.id), "session_id": session.id},
        )
    raise _closed_error(locked)


@transaction.atomic
def _order_cancel_unless_session(
    order_id: UUID, *, reason: str, cause: dict[str, Any], key_release: bool
) -> Order:
    """Cancels the order (giving its stock back) unless it got a session meanwhile; the
    cancel's timeline entry keeps `cause` as its data (read back by _closed_error).

    With `key_release` (an outage) the order also lets go of its Idempotency-Key: the
    502 says "try again later", and a retry with the same key must then start a new
    order instead of getting this canceled one back for 24 hours (Stripe does not store
    5xx answers either). A refusal keeps its key: the same request would be refused
    again, as Stripe keeps its 4xx answers."""
    order = orders_lock([order_id])[order_id]
    if not order.stripe_checkout_session_id and order.is_pending():
        transitions.apply(order, Order.Status.CANCELED, message=reason, data=cause)
        if key_release and order.idempotency_key:
            order.idempotency_key = None
            order.save(update_fields=["idempotency_key", "updated_at"])
    return order


def checkout_session_apply(
    order: Order,
    session: dict[str, Any],
    *,
    stripe_event_id: str = "",
    intent: dict[str, Any] | None = None,
) -> None:
    """Brings a (locked) order in line with what its Checkout Session says now. Without a
    Stripe event (the sync), applying what is already known writes nothing.

    Only the order's own session is applied (payments.ownership): any other one, even
    carrying the order's id, only flags the order `foreign_session` for staff.

    `intent` is the session's PaymentIntent as the sync read it from Stripe (None from
    the webhook, which has the PaymentIntent's own events): a complete/unpaid session
    stays so whether its delayed payment is processing, succeeded or failed, so only
    the PaymentIntent tells (facts.payment_intent_read). It counts only when it is the
    one this own session names.
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
        if intent is not None and intent_id is not None:
            if ownership.intent_read_is_own(order, intent_id, intent):
                facts.payment_intent_read(order, intent)
            else:
                logger.warning(
                    "sync: the PaymentIntent read is not the one the order's session names",
                    extra={"order_id": str(order.id), "payment_intent": intent.get("id")},
                )
    elif status == "expired" and (stripe_event_id or order.is_pending()):
        facts.payment_intent_adopt(order, intent_id)
        transitions.apply(order, Order.Status.EXPIRED, stripe_event_id=stripe_event_id)
    # An open session: the customer is still paying; nothing to apply.


class NoCheckoutSession(DomainError):
    status = 409
    code = "no_checkout_session"
    default_message = "This order has no Checkout Session to synchronise."


def order_sync(*, order_id: UUID) -> Order:
    """The landing page's instant answer, and reconciliation's look: re-reads the session
    from Stripe (no lock held) and applies it with the same function the webhook uses.
    A complete/unpaid session's PaymentIntent is read too (see session_intent_read); both reads
    share one Stripe budget, so a sync ends within WEB_TIMEOUT like a checkout."""
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        raise NotFound("No such order.")
    if not order.stripe_checkout_session_id:
        raise NoCheckoutSession()
    with gateway.budget():
        session = _session_read(order)
        intent = session_intent_read(order, session)
    with transaction.atomic():
        locked = orders_lock([order_id])[order_id]
        checkout_session_apply(locked, session, intent=intent)
    return locked


def _session_read(order: Order) -> dict[str, Any]:
    """The order's Checkout Session from Stripe, or the sync's error for Stripe's answer."""
    assert order.stripe_checkout_session_id is not None
    try:
        session = gateway.checkout_session_retrieve(order.stripe_checkout_session_id)
    except gateway.GatewayError as exc:
        logger.warning(
            "sync: could not read the Checkout Session from Stripe",
            extra={"order_id": str(order.id), **exc.log_fields()},
        )
        if isinstance(exc, gateway.GatewayNotFound):
            raise CheckoutSessionUnknown() from exc
        if isinstance(exc, gateway.GatewayRejected):
            raise PaymentProviderRejected(
                "The payment provider refused to show this order's Checkout Session.",
                provider_code=exc.code,
            ) from exc
        raise PaymentProviderUnavailable("The payment provider could not be reached.") from exc
    return session


def session_intent_read(order: Order, session: dict[str, Any]) -> dict[str, Any] | None:
    """The PaymentIntent of the order's own complete/unpaid session, read from Stripe with
    no lock held, for checkout_session_apply(..., intent=...); None for any other session
    (nothing to learn from it). The sync and the staff actions use it.

    After a bank debit fails Stripe leaves the session complete/unpaid; only the
    PaymentIntent (back to requires_payment_method) says so, and a lost
    async_payment_failed webhook would otherwise hold the order's stock forever.

    Stripe failing to answer here is logged and returns None: the session (which Stripe
    did answer) is still applied, so the order stays as the session says (processing),
    and a staff action says a delayed payment is still processing; the next sync or
    reconciliation asks again. The caller's order is not locked: checkout_session_apply
    checks ownership again under the lock."""
    raw_intent = session.get("payment_intent")
    if not (
        session.get("status") == "complete"
        and session.get("payment_status") == "unpaid"
        and isinstance(raw_intent, str)
        and raw_intent
        and ownership.session_is_own(order, session)
    ):
        return None
    try:
        return gateway.payment_intent_retrieve(raw_intent)
    except gateway.GatewayError as exc:
        logger.warning(
            "could not read the PaymentIntent from Stripe; applying the session only",
            extra={"order_id": str(order.id), "payment_intent": raw_intent, **exc.log_fields()},
        )
        return None
