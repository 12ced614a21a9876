"""Which cart a browser has: a customer's is their open cart (carts.services); a
guest's id and token live in the session (the token is the cart's credential, as the
API's X-Cart-Token is; only its hash is stored with the cart)."""

from dataclasses import dataclass
from uuid import UUID

from django.contrib.auth.models import User
from django.db.models import Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest

from djangomart.carts import services
from djangomart.carts.models import Cart, CartStatus
from djangomart.carts.selectors import CartNotFound, cart_get_for_client, cart_is_clients
from djangomart.carts.signals import guest_cart_merge

SESSION_KEY = "storefront_cart"


@dataclass(frozen=True)
class CartRef:
    cart_id: UUID
    token: str | None
    customer: User | None


def _customer(request: HttpRequest) -> User | None:
    user = request.user
    return user if user.is_authenticated else None


def cart_ref(request: HttpRequest, *, create: bool) -> CartRef | None:
    """The browser's cart, created when `create` and there is none; None otherwise."""
    customer = _customer(request)
    if customer is not None:
        if not create and not Cart.objects.filter(customer=customer, status="open").exists():
            return None
        own = services.cart_of_customer(customer=customer)
        return CartRef(own.pk, None, customer)
    stored = request.session.get(SESSION_KEY)
    if stored:
        ref = CartRef(UUID(stored["id"]), stored["token"], None)
        try:
            if cart_get_for_client(cart_id=ref.cart_id, token=ref.token, customer=None).is_open():
                return ref
        except CartNotFound:
            pass  # deleted (idle carts are): a new one below
    if not create:
        return None
    cart, token = services.cart_create(customer=None)
    request.session[SESSION_KEY] = {"id": str(cart.pk), "token": token}
    return CartRef(cart.pk, token, None)


def cart_forget(request: HttpRequest) -> None:
    request.session.pop(SESSION_KEY, None)


def guest_token(request: HttpRequest) -> str | None:
    stored = request.session.get(SESSION_KEY)
    return stored["token"] if stored else None


def cart_units(request: HttpRequest) -> int:
    """How many units the browser's cart holds, for the header: one query, whatever the
    number of lines, and never a cart created or settled (the cart page does that)."""
    carts = Cart.objects.annotate(units=Coalesce(Sum("lines__quantity"), 0))
    customer = _customer(request)
    if customer is not None:
        cart = carts.filter(customer=customer, status=CartStatus.OPEN).first()
    else:
        stored = request.session.get(SESSION_KEY) or {}
        cart = carts.filter(pk=stored["id"]).first() if stored else None
        if cart is not None and not (
            cart.is_open() and cart_is_clients(cart, token=stored["token"], customer=None)
        ):
            cart = None
    return int(getattr(cart, "units", 0) or 0)


def guest_cart_merge_at_login(request: HttpRequest | None, user: User) -> None:
    """At login (and at the login that follows an email verification) the session's
    guest cart joins the customer's, by the API's own rule (carts.signals), and the
    session forgets it: the customer's cart is the browser's from now on."""
    if request is None or not hasattr(request, "session"):
        return
    token = guest_token(request)
    if token is None:
        return
    guest_cart_merge(token=token, customer=user)
    cart_forget(request)
