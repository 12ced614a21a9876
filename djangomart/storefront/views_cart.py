"""The cart and checkout pages. Every write is a carts.services call (the API's own);
a refusal is shown on the page, nothing changed. With htmx a change answers the cart's
fragment; without JavaScript, a redirect back to the cart (post/redirect/get)."""

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from djangomart.accounts.addresses import address_list, address_snapshot_for_checkout
from djangomart.carts import services
from djangomart.carts.models import Cart
from djangomart.carts.selectors import CartNotFound, cart_get_for_client, cart_view
from djangomart.core.errors import DomainError
from djangomart.core.ratelimit import rate_limit_take
from djangomart.money import format_amount
from djangomart.storefront.cart_session import CartRef, cart_ref
from djangomart.storefront.forms import AddressForm, CartLineForm, CheckoutForm
from djangomart.storefront.htmx import is_htmx

PROBLEM_TEXT = {
    "not_enough_stock": "Only {available} left: lower the quantity.",
    "out_of_stock": "Out of stock: remove it to check out.",
    "unavailable": "No longer sold: remove it to check out.",
    "price_changed": "The price changed to {price}: update the quantity to accept it.",
    "currency_mismatch": "Sold in another currency: it cannot be bought with the rest.",
}


def _problem_text(problem: dict[str, Any], currency: str | None) -> str:
    text = str(PROBLEM_TEXT.get(problem.get("code", ""), problem.get("message", "")))
    price = problem.get("current_price")
    return text.format(
        available=problem.get("available", 0),
        price=format_amount(price, currency) if price is not None and currency else "",
    )


def _cart_context(ref: CartRef | None) -> dict[str, Any]:
    if ref is None:
        return {"view": None, "lines": [], "can_checkout": False}
    cart: Cart = services.cart_refresh(
        cart_get_for_client(cart_id=ref.cart_id, token=ref.token, customer=ref.customer)
    )
    view = cart_view(cart)
    currency = view.currency
    lines = [
        {
            "sku": line.sku,
            "name": line.line.variant.product.name,
            "label": line.line.variant.label,
            "slug": line.line.variant.product.slug,
            "quantity": line.line.quantity,
            "unit_price": format_amount(line.unit_price, currency) if currency else "",
            "line_total": format_amount(line.line_total, currency) if currency else "",
            "problems": [_problem_text(p, currency) for p in line.problems],
        }
        for line in view.lines
    ]
    return {
        "view": view,
        "lines": lines,
        "subtotal": format_amount(view.subtotal, currency) if currency else "",
        "can_checkout": view.can_checkout,
        "cart_problems": [_problem_text(p, currency) for p in view.problems],
    }


def _answer(request: HttpRequest, ref: CartRef | None, status: int = 200) -> HttpResponse:
    if is_htmx(request):
        response = render(request, "storefront/_cart.html", _cart_context(ref))
        response.status_code = status
        return response
    return redirect("storefront:cart")


def _back(request: HttpRequest) -> str:
    """The page the form came from (`next`), if it is one of this site's; else the cart."""
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("storefront:cart")


@require_http_methods(["GET", "HEAD"])
def cart(request: HttpRequest) -> HttpResponse:
    try:
        context = _cart_context(cart_ref(request, create=False))
    except CartNotFound:
        context = _cart_context(None)
    return render(request, "storefront/cart.html", context)


@require_POST
def cart_add(request: HttpRequest) -> HttpResponse:
    form = CartLineForm(request.POST)
    if not form.is_valid():
        messages.error(request, form.first_error())
        return redirect(_back(request))
    ref = cart_ref(request, create=True)
    assert ref is not None
    try:
        services.cart_line_add(
            cart_id=ref.cart_id,
            token=ref.token,
            customer=ref.customer,
            sku=form.cleaned_data["sku"],
            quantity=form.cleaned_data["quantity"],
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect(_back(request))
    messages.success(request, "Added to your cart.")
    return redirect("storefront:cart")


@require_POST
def cart_update(request: HttpRequest) -> HttpResponse:
    form = CartLineForm(request.POST, allow_zero=True)
    ref = cart_ref(request, create=False)
    if ref is None:
        return _answer(request, None)
    if not form.is_valid():
        messages.error(request, form.first_error())
        return _answer(request, ref, 422)
    try:
        if request.POST.get("remove") or form.cleaned_data["quantity"] == 0:
            services.cart_line_remove(
                cart_id=ref.cart_id,
                token=ref.token,
                customer=ref.customer,
                sku=form.cleaned_data["sku"],
            )
        else:
            services.cart_line_set(
                cart_id=ref.cart_id,
                token=ref.token,
                customer=ref.customer,
                sku=form.cleaned_data["sku"],
                quantity=form.cleaned_data["quantity"],
            )
    except DomainError as exc:
        messages.error(request, exc.message)
        return _answer(request, ref, exc.status)
    return _answer(request, ref)


@require_http_methods(["GET", "HEAD", "POST"])
def checkout(request: HttpRequest) -> HttpResponse:
    ref = cart_ref(request, create=False)
    context = _cart_context(ref)
    if ref is None or not context["lines"]:
        messages.error(request, "Your cart is empty.")
        return redirect("storefront:cart")
    customer = ref.customer
    addresses = list(address_list(customer=customer)) if customer is not None else []
    form = CheckoutForm(request.POST or None, customer=customer, addresses=addresses)
    address_form = AddressForm(request.POST or None, prefix="address")
    status = 200
    if request.method == "POST":
        status = 422  # the form's errors, unless the engine refuses with its own status
        if form.is_valid():
            try:
                result = _checkout(request, ref, form, address_form)
            except DomainError as exc:
                messages.error(request, exc.message)
                status = exc.status
            else:
                if result is not None:
                    return redirect(result)
    return render(
        request,
        "storefront/checkout.html",
        {**context, "form": form, "address_form": address_form, "addresses": addresses},
        status=status,
    )


def _checkout(
    request: HttpRequest, ref: CartRef, form: CheckoutForm, address_form: AddressForm
) -> str | None:
    """The Stripe Checkout URL to send the browser to; None when the address form has
    errors (shown on the page)."""
    address_id = form.cleaned_data.get("address_id")
    address = None
    if not address_id:
        if not address_form.is_valid():
            return None
        address = address_form.cleaned_data
    rate_limit_take(
        "checkout",
        settings.RATE_LIMIT_CHECKOUT,
        request,
        ref.customer.pk if ref.customer is not None else None,
    )
    shipping = address_snapshot_for_checkout(
        customer=ref.customer, address_id=address_id or None, address=address
    )
    # This server's own pages, whatever FRONTEND_URL says (a brand's other frontend).
    return_url = (
        settings.PUBLIC_URL + reverse("checkout-return") + "?session_id={CHECKOUT_SESSION_ID}"
    )
    result = services.cart_checkout(
        cart_id=ref.cart_id,
        token=ref.token,
        customer=ref.customer,
        email=form.cleaned_data.get("email") or None,
        success_url=return_url,
        cancel_url=settings.PUBLIC_URL + reverse("storefront:cart"),
        shipping_address=shipping,
        # The form as sent now is the order: a customer back from Stripe may have
        # corrected the email or the address.
        restart_if_changed=True,
    )
    return result.checkout_url
