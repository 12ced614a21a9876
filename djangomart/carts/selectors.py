"""Reads of carts: who may see one, and what it looks like against the catalog now."""

import hashlib
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from django.contrib.auth.models import User
from django.utils.crypto import constant_time_compare

from djangomart.carts.models import Cart, CartLine
from djangomart.core.errors import NotFound
from djangomart.orders.models import Order, OrderLine


class CartNotFound(NotFound):
    default_message = "No such cart."


def cart_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def cart_is_clients(cart: Cart, *, token: str | None, customer: User | None) -> bool:
    """A customer cart is its customer's alone (a guest token never opens it); a guest
    cart opens with its token, whoever sends it."""
    if cart.customer_id is not None:
        return customer is not None and customer.pk == cart.customer_id
    return (
        bool(token)
        and cart.token_hash is not None
        and constant_time_compare(cart_token_hash(token or ""), cart.token_hash)
    )


def cart_get_for_client(*, cart_id: UUID, token: str | None, customer: User | None) -> Cart:
    """The cart, for whoever may use it; anyone else gets CartNotFound (404), so that
    cart ids cannot be probed."""
    cart = Cart.objects.filter(pk=cart_id).first()
    if cart is None or not cart_is_clients(cart, token=token, customer=customer):
        raise CartNotFound()
    return cart


@dataclass(frozen=True)
class LineView:
    line: CartLine
    unit_price: int
    line_total: int
    available: int
    problems: list[dict[str, Any]]

    @property
    def sku(self) -> str:
        return self.line.variant.sku


@dataclass(frozen=True)
class CartView:
    cart: Cart
    lines: list[LineView]
    subtotal: int
    currency: str | None
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def can_checkout(self) -> bool:
        return self.cart.is_open() and bool(self.lines) and not self.problems


def line_problems(
    line: CartLine, own_reserved: int = 0, currency: str | None = None
) -> list[dict[str, Any]]:
    """What stands between this line and a checkout, against the catalog now (the
    line's variant and product loaded); `own_reserved`: units of the variant that the
    cart's own pending order holds (see cart_own_reserved); `currency`: the cart's."""
    variant = line.variant
    if not (variant.active and variant.product.active):
        return [{"code": "unavailable", "message": f"{variant.sku} is no longer sold."}]
    if currency is not None and variant.currency != currency:
        return [
            {
                "code": "currency_mismatch",
                "message": f"{variant.sku} is now priced in {variant.currency.upper()}, the "
                f"cart in {currency.upper()}: remove it.",
            }
        ]
    problems: list[dict[str, Any]] = []
    available = max(variant.available, 0) + own_reserved
    if available == 0:
        problems.append(
            {"code": "out_of_stock", "message": f"{variant.sku} is out of stock.", "available": 0}
        )
    elif available < line.quantity:
        problems.append(
            {
                "code": "not_enough_stock",
                "message": f"Only {available} of {variant.sku} available.",
                "available": available,
            }
        )
    if variant.price != line.unit_price:
        problems.append(
            {
                "code": "price_changed",
                "message": f"The price of {variant.sku} changed since it was added; set its "
                "quantity again to accept the new price.",
                "price_when_added": line.unit_price,
                "current_price": variant.price,
            }
        )
    return problems


def cart_own_reserved(cart: Cart) -> dict[int, int]:
    """Units per variant that the cart's own order holds while it is pending and made
    from the cart's current lines: they are this cart's, so the customer paying for the
    last unit does not see it `out_of_stock`. One query, only for a cart with an order."""
    if cart.order_id is None or cart.order_revision != cart.revision:
        return {}
    held: dict[int, int] = {}
    rows = OrderLine.objects.filter(
        order_id=cart.order_id,
        order__status=Order.Status.PENDING,
        order__stock_released=False,
    ).values_list("variant_id", "quantity")
    for variant_id, quantity in rows:
        held[variant_id] = held.get(variant_id, 0) + quantity
    return held


def cart_view(cart: Cart) -> CartView:
    """The cart's lines with the catalog's price and availability at this moment, line
    totals and subtotal (current prices), and each line's problems. Two queries (three
    for a cart with an order)."""
    lines = list(
        CartLine.objects.filter(cart=cart)
        .select_related("variant__product")
        .order_by("created_at", "pk")
    )
    own = cart_own_reserved(cart)
    # A cart is in one currency, its first line's (adding a SKU in another is refused:
    # services.cart_line_add); a line whose variant staff moved to another currency since
    # is a problem, so the subtotal never adds two currencies.
    currency = lines[0].variant.currency if lines else None
    views = [
        LineView(
            line=ln,
            unit_price=ln.variant.price,
            line_total=ln.variant.price * ln.quantity,
            available=max(ln.variant.available, 0) + own.get(ln.variant_id, 0),
            problems=line_problems(ln, own.get(ln.variant_id, 0), currency),
        )
        for ln in lines
    ]
    problems = [{"sku": v.sku, "problems": v.problems} for v in views if v.problems]
    return CartView(
        cart=cart,
        lines=views,
        subtotal=sum(v.line_total for v in views if v.line.variant.currency == currency),
        currency=currency,
        problems=problems,
    )
