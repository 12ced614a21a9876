"""Cart writes (docs/carts.md): creation, lines, checkout through the payment engine,
the merge of a guest cart at login, and the idle cleanup.

Locks follow the global order (docs/payments.md): carts before orders before variants,
each set in primary-key order. No cart lock is held while Stripe is called: a cart
whose order is pending is unlocked, the order canceled through the staff cancel (which
expires its Checkout Session at Stripe first), and the cart locked again."""

import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import salted_hmac

from djangomart.carts.models import Cart, CartLine, CartStatus
from djangomart.carts.selectors import (
    CartNotFound,
    cart_is_clients,
    cart_own_reserved,
    cart_token_hash,
    cart_view,
)
from djangomart.catalog.models import Variant
from djangomart.core.errors import DomainError
from djangomart.orders.models import Order
from djangomart.payments import checkout
from djangomart.payments.staff import CheckoutSessionComplete, OrderNotPending, order_staff_cancel

logger = logging.getLogger(__name__)

MAX_QUANTITY = checkout.MAX_QUANTITY
MAX_LINES = 50
CANCEL_REASON = "the customer changed the cart before paying"
_PAID = (Order.Status.PAID, Order.Status.FULFILLED)


class CartClosed(DomainError):
    status = 409
    code = "cart_closed"
    default_message = "This cart is closed (merged into a customer's cart, or checked out)."


class CartCheckedOut(DomainError):
    status = 409
    code = "cart_checked_out"
    default_message = (
        "This cart's order is paid (or its payment is processing): the cart is closed."
    )


class CurrencyMismatch(DomainError):
    status = 409
    code = "currency_mismatch"


class CartFull(DomainError):
    status = 409
    code = "cart_full"
    default_message = f"A cart has at most {MAX_LINES} lines."


class LineQuantityExceeded(DomainError):
    status = 409
    code = "quantity_limit"


class LineNotFound(DomainError):
    status = 404
    code = "line_not_found"


class CartEmpty(DomainError):
    status = 409
    code = "cart_empty"
    default_message = "The cart has no lines to check out."


class CartHasProblems(DomainError):
    status = 409
    code = "cart_has_problems"
    default_message = "Some lines cannot be checked out as they are; see `problems`."


class CartChanged(DomainError):
    status = 409
    code = "cart_changed"
    default_message = (
        "The cart changed while its checkout was being created; that checkout was canceled. "
        "Check out again."
    )


class CartBusy(DomainError):
    status = 409
    code = "cart_busy"
    default_message = "The cart's order changed while this request ran; try again."


def carts_lock(ids: Iterable[UUID]) -> dict[UUID, Cart]:
    """Locks the carts in pk order and returns them freshly read. Inside atomic(), before
    any order or variant lock."""
    rows = Cart.objects.filter(pk__in=list(ids)).order_by("pk").select_for_update(of=("self",))
    return {cart.pk: cart for cart in rows}


def _settle(cart: Cart) -> None:
    """Closes a (locked) open cart whose order is paid: the payment engine's worker never
    takes cart locks (it holds the order's, and carts come first), so "checked out" is
    decided here, when the cart is next touched."""
    if (
        cart.is_open()
        and cart.order_id is not None
        and Order.objects.filter(pk=cart.order_id, status__in=_PAID).exists()
    ):
        cart.status = CartStatus.CLOSED
        cart.save(update_fields=["status", "updated_at"])


def _writable(cart: Cart) -> None:
    if cart.is_open():
        return
    if cart.status == CartStatus.CLOSED and cart.order_id is not None:
        raise CartCheckedOut(order_id=str(cart.order_id))
    raise CartClosed(cart_status=cart.status)


def _locked_for_client(cart_id: UUID, token: str | None, customer: User | None) -> Cart:
    cart = carts_lock([cart_id]).get(cart_id)
    if cart is None or not cart_is_clients(cart, token=token, customer=customer):
        raise CartNotFound()
    _settle(cart)
    return cart


def _pending_order_id(cart: Cart) -> UUID | None:
    """The cart's order if it is pending. One read of its status: an order paid since
    _settle looked (the worker does not wait for the cart's lock) is CartCheckedOut, not
    an order that merely ended, so no write lands on a cart that is being closed."""
    if cart.order_id is None:
        return None
    status = Order.objects.filter(pk=cart.order_id).values_list("status", flat=True).first()
    if status in _PAID:
        raise CartCheckedOut(order_id=str(cart.order_id))
    return cart.order_id if status == Order.Status.PENDING else None


def _order_cancel_for_cart(order_id: UUID) -> None:
    """Cancels the cart's pending order (no lock held): its Checkout Session is expired
    at Stripe first, so one cart never has two payable sessions. A session the customer
    completed first is applied instead: CartCheckedOut. Stripe unreachable:
    PaymentProviderError, nothing changed."""
    try:
        order_staff_cancel(order_id=order_id, user=None, reason=CANCEL_REASON)
    except CheckoutSessionComplete as exc:
        raise CartCheckedOut(exc.message) from exc
    except OrderNotPending:
        pass  # it ended meanwhile (expired, paid): the caller reads it again under the lock


# -- Creation ------------------------------------------------------------------------------


def cart_create(*, customer: User | None) -> tuple[Cart, str | None]:
    """A new guest cart and its token (shown once; only its hash is stored), or the
    customer's open cart (created if none) and no token."""
    if customer is not None:
        return cart_of_customer(customer=customer), None
    token = secrets.token_urlsafe(32)
    return Cart.objects.create(token_hash=cart_token_hash(token)), token


def cart_of_customer(*, customer: User) -> Cart:
    """The customer's open cart, created if they have none (a cart whose order was paid
    is closed first, and a new one made)."""
    for _ in range(3):
        cart = Cart.objects.filter(customer=customer, status=CartStatus.OPEN).first()
        if cart is None:
            try:
                # Savepoint: the partial unique constraint settles a concurrent creation.
                with transaction.atomic():
                    return Cart.objects.create(customer=customer)
            except IntegrityError:
                continue
        if cart.order_id is None:
            return cart
        with transaction.atomic():
            locked = carts_lock([cart.pk]).get(cart.pk)
            if locked is not None:
                _settle(locked)
                if locked.is_open():
                    return locked
    raise CartBusy()


def cart_refresh(cart: Cart) -> Cart:
    """`cart` as it stands, closed first if its order was paid (a read's touch)."""
    if not cart.is_open() or cart.order_id is None:
        return cart
    with transaction.atomic():
        locked = carts_lock([cart.pk]).get(cart.pk)
        if locked is None:
            raise CartNotFound()
        _settle(locked)
        return locked


# -- Lines ---------------------------------------------------------------------------------


def _cart_write(
    *, cart_id: UUID, token: str | None, customer: User | None, change: Callable[[Cart], None]
) -> Cart:
    """Applies `change` to the locked, open cart and bumps its revision. A pending order
    of the cart is canceled first, with no lock held (see _order_cancel_for_cart)."""
    for _ in range(3):
        with transaction.atomic():
            cart = _locked_for_client(cart_id, token, customer)
            _writable(cart)
            pending = _pending_order_id(cart)
            if pending is None:
                change(cart)
                cart.revision += 1
                cart.save(update_fields=["revision", "updated_at"])
                return cart
            # Tried first in a savepoint, rolled back: a write the cart refuses
            # (line_not_found, quantity_limit, cart_full) is bad input and changes
            # nothing, so it must not cancel the order the customer may be paying.
            with transaction.atomic():
                change(cart)
                transaction.set_rollback(True)
        _order_cancel_for_cart(pending)
    raise CartBusy()


def _variant_for_sku(sku: str) -> Variant:
    variant = Variant.objects.select_related("product").filter(sku=sku).first()
    if variant is None or not variant.active or not variant.product.active:
        raise checkout.UnknownSku(f"Unknown SKU {sku!r}.", sku=sku)
    return variant


def _current_price(variant_id: int) -> int:
    return int(Variant.objects.values_list("price", flat=True).get(pk=variant_id))


def cart_line_add(
    *, cart_id: UUID, token: str | None, customer: User | None, sku: str, quantity: int
) -> Cart:
    """Adds `quantity` of `sku` (an existing line grows, and takes the current price).
    More than is available is allowed: the cart shows not_enough_stock; stock is
    reserved only at checkout. Raises UnknownSku, LineQuantityExceeded, CartFull,
    CartClosed, CartCheckedOut, CartNotFound."""
    variant = _variant_for_sku(sku)

    def change(cart: Cart) -> None:
        line = CartLine.objects.filter(cart=cart, variant=variant).first()
        total = quantity + (line.quantity if line is not None else 0)
        if total > MAX_QUANTITY:
            raise LineQuantityExceeded(
                f"At most {MAX_QUANTITY} of {sku} per cart.",
                sku=sku,
                quantity=line.quantity if line is not None else 0,
                max_quantity=MAX_QUANTITY,
            )
        price = _current_price(variant.pk)
        first = CartLine.objects.filter(cart=cart).select_related("variant").first()
        if first is not None and first.variant.currency != variant.currency:
            # One order has one currency (payments.checkout): so has one cart.
            raise CurrencyMismatch(
                f"{sku} is priced in {variant.currency.upper()}, the cart in "
                f"{first.variant.currency.upper()}: a cart holds one currency.",
                sku=sku,
            )
        if line is not None:
            line.quantity, line.unit_price = total, price
            line.save(update_fields=["quantity", "unit_price", "updated_at"])
            return
        if CartLine.objects.filter(cart=cart).count() >= MAX_LINES:
            raise CartFull()
        CartLine.objects.create(cart=cart, variant=variant, quantity=quantity, unit_price=price)

    return _cart_write(cart_id=cart_id, token=token, customer=customer, change=change)


def _line(cart: Cart, sku: str) -> CartLine:
    line = CartLine.objects.filter(cart=cart, variant__sku=sku).first()
    if line is None:
        raise LineNotFound(f"The cart has no line for {sku!r}.", sku=sku)
    return line


def cart_line_set(
    *, cart_id: UUID, token: str | None, customer: User | None, sku: str, quantity: int
) -> Cart:
    """Sets the line's quantity (0 removes it); the line takes the current price, which
    is how a customer accepts a changed price. Raises LineNotFound and as cart_line_add."""

    def change(cart: Cart) -> None:
        line = _line(cart, sku)
        if quantity == 0:
            line.delete()
            return
        line.quantity, line.unit_price = quantity, _current_price(line.variant_id)
        line.save(update_fields=["quantity", "unit_price", "updated_at"])

    return _cart_write(cart_id=cart_id, token=token, customer=customer, change=change)


def cart_line_remove(*, cart_id: UUID, token: str | None, customer: User | None, sku: str) -> Cart:
    """Removes the line of `sku`. Raises LineNotFound and as cart_line_add."""

    def change(cart: Cart) -> None:
        _line(cart, sku).delete()

    return _cart_write(cart_id=cart_id, token=token, customer=customer, change=change)


# -- Checkout ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """What cart_checkout does after the cart's lock is released: cancel the cart's stale
    pending order (then plan again), or ask the payment engine for attempt `seq`."""

    cancel_order_id: UUID | None = None
    seq: int = 0
    revision: int = 0
    request: dict[str, Any] | None = None
    lines: tuple[checkout.LineWanted, ...] = ()


def _engine_key(cart_id: UUID, seq: int) -> str:
    """The payment engine's Idempotency-Key of the cart's checkout attempt `seq`: the same
    for every request of one attempt (so two at once make one order), and a secret (a
    guest's key returns the order's access_token)."""
    digest = salted_hmac("djangomart.carts.checkout", f"{cart_id}:{seq}", algorithm="sha256")
    return f"cart-{digest.hexdigest()}"


def _customer_email(customer: User) -> str:
    primary = EmailAddress.objects.filter(user=customer, primary=True).first()
    return primary.email if primary is not None else customer.email


def _default_email(cart: Cart) -> str | None:
    return _customer_email(cart.customer) if cart.customer is not None else None


def _same_details(
    request: dict[str, Any] | None,
    cart: Cart,
    email: str | None,
    shipping_address: dict[str, str] | None,
    success_url: str | None,
    cancel_url: str | None,
) -> bool:
    """Whether a checkout asks for what the cart's attempt `request` asked for."""
    return (
        request is not None
        and request["email"] == (email or _default_email(cart))
        and request["shipping_address"] == shipping_address
        and request["success_url"] == success_url
        and request["cancel_url"] == cancel_url
    )


def _checkout_plan(
    *,
    cart_id: UUID,
    token: str | None,
    customer: User | None,
    email: str | None,
    success_url: str | None,
    cancel_url: str | None,
    shipping_address: dict[str, str] | None,
    restart_if_changed: bool = False,
) -> _Plan:
    with transaction.atomic():
        cart = _locked_for_client(cart_id, token, customer)
        _writable(cart)
        view = cart_view(cart)
        if not view.lines:
            raise CartEmpty()
        lines = tuple(checkout.LineWanted(v.sku, v.line.quantity) for v in view.lines)
        request = cart.checkout_request
        pending = _pending_order_id(cart)
        # A repeat, or a join, comes before the problems: the attempt's order holds the
        # lines' stock (the last unit reads as out_of_stock now) and their prices.
        if pending is not None:
            same_details = not restart_if_changed or _same_details(
                request, cart, email, shipping_address, success_url, cancel_url
            )
            if cart.order_revision == cart.revision and request is not None and same_details:
                # A repeat while the order is pending: the same attempt, replayed.
                return _Plan(seq=cart.checkout_seq, revision=cart.revision, request=request,
                             lines=lines)  # fmt: skip
            return _Plan(cancel_order_id=pending)
        if (
            request is not None
            and cart.order_id is None
            and request["seq"] == cart.checkout_seq
            and request["revision"] == cart.revision
        ):
            # Another request is creating this attempt's order now: join it, unless this
            # one asks for other details, which cannot be the order being made (nor can
            # it be canceled before it exists): "try again" in a moment.
            if restart_if_changed and not _same_details(
                request, cart, email, shipping_address, success_url, cancel_url
            ):
                raise checkout.CheckoutInProgress(
                    "Your previous checkout is still being created; try again in a moment."
                )
            return _Plan(seq=cart.checkout_seq, revision=cart.revision, request=request,
                         lines=lines)  # fmt: skip
        if view.problems:
            raise CartHasProblems(problems=view.problems)
        if cart.customer_id is not None and not email:
            assert cart.customer is not None
            email = _customer_email(cart.customer)
        if not email:
            raise checkout.InvalidCheckout(
                "A guest's checkout needs an email.", location="email", kind="missing"
            )
        cart.checkout_seq += 1
        cart.order = None
        cart.order_revision = None
        cart.checkout_request = {
            "seq": cart.checkout_seq,
            "revision": cart.revision,
            "email": email,
            "success_url": success_url,
            "cancel_url": cancel_url,
            "shipping_address": shipping_address,
            "customer_id": cart.customer_id,
        }
        cart.save(
            update_fields=["checkout_seq", "order", "order_revision", "checkout_request",
                           "updated_at"]
        )  # fmt: skip
        return _Plan(seq=cart.checkout_seq, revision=cart.revision,
                     request=cart.checkout_request, lines=lines)  # fmt: skip


def cart_checkout(
    *,
    cart_id: UUID,
    token: str | None,
    customer: User | None,
    email: str | None = None,
    success_url: str | None = None,
    cancel_url: str | None = None,
    shipping_address: dict[str, str] | None = None,
    restart_if_changed: bool = False,
) -> checkout.CheckoutResult:
    """Starts the payment engine's checkout from the cart, idempotent per cart: while
    the cart's order is pending and its lines unchanged, a repeat (whatever its body or
    Idempotency-Key) answers the same order and Checkout Session. A pending order of an
    older revision is canceled first. With `restart_if_changed` (the storefront's
    checkout form, where a customer who came back from Stripe corrects the email or the
    address), a repeat with other details (email, shipping address, return URLs) cancels
    the pending order too and starts a new attempt with them. Raises CartEmpty,
    CartHasProblems, CartClosed, CartCheckedOut, CartChanged, CartNotFound,
    InvalidCheckout and whatever payments.checkout.checkout_create raises."""
    for _ in range(3):
        plan = _checkout_plan(
            cart_id=cart_id,
            token=token,
            customer=customer,
            email=email,
            success_url=success_url,
            cancel_url=cancel_url,
            shipping_address=shipping_address,
            restart_if_changed=restart_if_changed,
        )
        if plan.cancel_order_id is None:
            break
        _order_cancel_for_cart(plan.cancel_order_id)
    else:
        raise CartBusy()
    request = plan.request
    assert request is not None
    try:
        result = checkout.checkout_create(
            email=request["email"],
            lines=list(plan.lines),
            success_url=request["success_url"],
            cancel_url=request["cancel_url"],
            idempotency_key=_engine_key(cart_id, plan.seq),
            customer_id=request["customer_id"],
            shipping_address=request["shipping_address"],
        )
    except checkout.CheckoutInProgress:
        raise
    except DomainError:
        _attempt_forget(cart_id, plan.seq)
        raise
    if not _attempt_link(cart_id, plan, result.order):
        _order_cancel_for_cart(result.order.pk)
        raise CartChanged()
    return result


@transaction.atomic
def _attempt_forget(cart_id: UUID, seq: int) -> None:
    """The attempt failed (a refusal the same request would meet again, e.g. a bad
    success_url): the next checkout starts a new attempt with its own body."""
    cart = carts_lock([cart_id]).get(cart_id)
    if cart is not None and cart.checkout_seq == seq and cart.order_id is None:
        cart.checkout_request = None
        cart.save(update_fields=["checkout_request", "updated_at"])


@transaction.atomic
def _attempt_link(cart_id: UUID, plan: _Plan, order: Order) -> bool:
    """Makes `order` the cart's; False when the cart changed meanwhile (a line write, or
    a newer attempt), so that the order's lines are no longer the cart's."""
    cart = carts_lock([cart_id]).get(cart_id)
    if cart is None or cart.checkout_seq != plan.seq or cart.revision != plan.revision:
        return False
    if cart.order_id != order.pk:
        cart.order = order
        cart.order_revision = plan.revision
        cart.save(update_fields=["order", "order_revision", "updated_at"])
    return True


# -- Merge at login ------------------------------------------------------------------------


def cart_merge(*, token: str, customer: User) -> Cart | None:
    """Merges the open guest cart of `token` into the customer's open cart (created if
    none): quantities added, each line capped by the variant's availability and
    MAX_QUANTITY (never below what the customer's line had), lines past MAX_LINES and
    unsold variants left out; the guest cart becomes `merged`. A guest cart whose order
    is pending is left alone (its guest may be paying it). Returns the customer's cart,
    or None when nothing was merged."""
    guest = Cart.objects.filter(
        token_hash=cart_token_hash(token), customer__isnull=True, status=CartStatus.OPEN
    ).first()
    if guest is None:
        return None
    for _ in range(3):
        target = cart_of_customer(customer=customer)
        with transaction.atomic():
            locked = carts_lock([guest.pk, target.pk])
            mine, theirs = locked.get(target.pk), locked.get(guest.pk)
            if theirs is None or not theirs.is_open() or mine is None:
                return None
            _settle(theirs)
            _settle(mine)
            if not theirs.is_open() or _pending_order_id(theirs) is not None:
                return None
            if not mine.is_open():
                continue  # its order was just found paid: merge into a new cart
            pending = _pending_order_id(mine)
            if pending is not None:
                # Tried first in a savepoint, rolled back: a guest cart that brings
                # nothing (empty, or every line already capped) leaves the customer's
                # cart as it is, so it must not cancel the order they may be paying.
                with transaction.atomic():
                    changed = _lines_merge(theirs, mine)
                    transaction.set_rollback(True)
                if not changed:
                    pending = None
            if pending is None:
                _lines_merge(theirs, mine)
                theirs.status = CartStatus.MERGED
                # A line change for the guest cart's own checkout: one still at Stripe
                # must not link its order to the merged cart (its lines are the
                # customer's now): it cancels that order and answers cart_changed.
                theirs.revision += 1
                theirs.save(update_fields=["status", "revision", "updated_at"])
                return mine
        _order_cancel_for_cart(pending)
    return None


def _lines_merge(source: Cart, target: Cart) -> bool:
    """Adds `source`'s lines into `target` (both locked). False when that changed
    nothing (then `target`'s revision is kept: its pending order is still its lines)."""
    existing = {ln.variant_id: ln for ln in target.lines.select_related("variant")}
    count = len(existing)
    changed = False
    # The customer's cart keeps its currency; guest lines in another are left out, as
    # those no longer sold are (a cart holds one currency: cart_line_add).
    first = target.lines.select_related("variant").order_by("created_at", "pk").first()
    currency = first.variant.currency if first is not None else None
    # What `target`'s own pending order holds is available to it: that order is canceled
    # for the merge (cart_merge's trial run in a savepoint must see the same caps).
    held = cart_own_reserved(target)
    for line in source.lines.select_related("variant__product").order_by("created_at", "pk"):
        variant = line.variant
        if not (variant.active and variant.product.active):
            continue
        if currency is None:
            currency = variant.currency
        elif variant.currency != currency:
            continue
        current = existing.get(variant.pk)
        had = current.quantity if current is not None else 0
        available = max(variant.available, 0) + held.get(variant.pk, 0)
        wanted = min(had + line.quantity, MAX_QUANTITY, available)
        if wanted <= had:
            continue
        if current is not None:
            current.quantity, current.unit_price = wanted, variant.price
            current.save(update_fields=["quantity", "unit_price", "updated_at"])
            changed = True
        elif count < MAX_LINES:
            CartLine.objects.create(
                cart=target, variant=variant, quantity=wanted, unit_price=variant.price
            )
            count += 1
            changed = True
    if changed:
        target.revision += 1
        target.save(update_fields=["revision", "updated_at"])
    return changed


# -- Cleanup -------------------------------------------------------------------------------

CLEANUP_BATCH = 500


def carts_idle_delete(*, batch_size: int = CLEANUP_BATCH, max_batches: int = 200) -> int:
    """Deletes carts idle (no activity) for more than CART_GUEST_IDLE_DAYS (guest carts)
    or CART_CUSTOMER_IDLE_DAYS (customer carts), in batches of `batch_size`, each its own
    short transaction that skips carts another request holds. Returns how many."""
    now = timezone.now()
    idle = Q(
        customer__isnull=True, updated_at__lt=now - timedelta(days=settings.CART_GUEST_IDLE_DAYS)
    ) | Q(
        customer__isnull=False,
        updated_at__lt=now - timedelta(days=settings.CART_CUSTOMER_IDLE_DAYS),
    )
    deleted = 0
    for _ in range(max_batches):
        with transaction.atomic():
            ids = list(
                Cart.objects.filter(idle)
                .order_by("pk")
                .select_for_update(skip_locked=True)
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                break
            CartLine.objects.filter(cart_id__in=ids).delete()
            Cart.objects.filter(pk__in=ids).delete()
        deleted += len(ids)
        if len(ids) < batch_size:
            break
    if deleted:
        logger.info("idle carts deleted", extra={"carts_deleted": deleted})
    return deleted
