"""The customer's own pages: order history, an order, the address book. Thin: orders are
read with orders.selectors and fulfillment.selectors, addresses written with
accounts.addresses, the API's own; someone else's order or address is a 404, exactly
like an unknown one."""

from collections.abc import Callable
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from djangomart.accounts import addresses
from djangomart.accounts.countries import COUNTRIES
from djangomart.accounts.models import Address
from djangomart.core.errors import DomainError, NotFound
from djangomart.fulfillment.selectors import shipments_of
from djangomart.money import format_amount
from djangomart.orders.models import Order
from djangomart.orders.selectors import order_get_for_client, order_page_for_customer
from djangomart.storefront.forms import AddressForm

ORDERS_PAGE_SIZE = 10


def _customer(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # login_required
    return user


MAX_PAGE = 100_000  # past any real history; keeps the OFFSET a number PostgreSQL takes


def _page_number(value: str | None) -> int:
    try:
        return min(max(1, int(value or 1)), MAX_PAGE)
    except ValueError:
        return 1


def _money(amount: int, order: Order) -> str:
    return format_amount(amount, order.currency)


@login_required
@require_safe
def order_list(request: HttpRequest) -> HttpResponse:
    customer = _customer(request)
    number = _page_number(request.GET.get("page"))
    page = order_page_for_customer(customer=customer, page=number, page_size=ORDERS_PAGE_SIZE)
    num_pages = max(1, -(-page.order_count // ORDERS_PAGE_SIZE))
    if number > num_pages:
        # A page past the end (orders deleted with the account's data, a stale link).
        number = num_pages
        page = order_page_for_customer(customer=customer, page=number, page_size=ORDERS_PAGE_SIZE)
    rows = [
        {
            "order": order,
            "total": _money(order.total, order),
            # The lines are prefetched by the selector: no query per order.
            "units": sum(line.quantity for line in order.lines.all()),
        }
        for order in page.orders
    ]
    return render(
        request,
        "storefront/account/orders.html",
        {
            "rows": rows,
            "count": page.order_count,
            "number": number,
            "num_pages": num_pages,
            "previous": number - 1 if number > 1 else None,
            "next": number + 1 if number < num_pages else None,
        },
    )


@login_required
@require_safe
def order_detail(request: HttpRequest, order_id: UUID) -> HttpResponse:
    try:
        order = order_get_for_client(order_id=order_id, token=None, customer=_customer(request))
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    lines = [
        {
            "name": line.name,
            "sku": line.sku,
            "quantity": line.quantity,
            "unit_price": _money(line.unit_price, order),
            "line_total": _money(line.line_total, order),
        }
        for line in order.lines.all()
    ]
    shipments = [
        {
            "shipment": shipment,
            "lines": [(sl.quantity, sl.order_line.name) for sl in shipment.lines.all()],
        }
        for shipment in shipments_of(order.pk)
    ]
    address = order.shipping_address or None
    return render(
        request,
        "storefront/account/order.html",
        {
            "order": order,
            "lines": lines,
            "subtotal": _money(order.subtotal, order),
            "total": _money(order.total, order),
            "refunded": _money(order.amount_refunded, order) if order.amount_refunded else "",
            "address": address,
            "country": COUNTRIES.get(address.get("country", ""), "") if address else "",
            "shipments": shipments,
        },
    )


@login_required
@require_safe
def address_list(request: HttpRequest) -> HttpResponse:
    book = list(addresses.address_list(customer=_customer(request)))
    return render(
        request,
        "storefront/account/addresses.html",
        {
            "addresses": [(a, COUNTRIES.get(a.country, a.country)) for a in book],
            "can_add": len(book) < addresses.MAX_ADDRESSES_PER_CUSTOMER,
        },
    )


def _form_page(
    request: HttpRequest, form: AddressForm, address: Address | None, status: int = 200
) -> HttpResponse:
    return render(
        request,
        "storefront/account/address_form.html",
        {"form": form, "address": address},
        status=status,
    )


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def address_add(request: HttpRequest) -> HttpResponse:
    form = AddressForm(request.POST or None)
    if request.method != "POST":
        return _form_page(request, form, None)
    if not form.is_valid():
        return _form_page(request, form, None, 422)
    try:
        addresses.address_create(
            customer=_customer(request),
            data=addresses.address_input_validate(form.cleaned_data),
        )
    except DomainError as exc:  # the book is full, the account was just deleted, ...
        form.add_error(None, exc.message)
        return _form_page(request, form, None, exc.status)
    messages.success(request, "Address saved.")
    return redirect("storefront:account-addresses")


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def address_edit(request: HttpRequest, address_id: UUID) -> HttpResponse:
    customer = _customer(request)
    address = _own_address(customer, address_id)
    initial: dict[str, Any] = addresses.address_snapshot(address)
    form = AddressForm(request.POST or None, initial=initial)
    if request.method != "POST":
        return _form_page(request, form, address)
    if not form.is_valid():
        return _form_page(request, form, address, 422)
    changes = {field: form.cleaned_data[field] for field in addresses.SNAPSHOT_FIELDS}
    try:
        addresses.address_update(customer=customer, address_id=address_id, changes=changes)
    except addresses.AddressNotFound as exc:  # deleted meanwhile (another tab)
        raise Http404(exc.message) from exc
    except DomainError as exc:
        form.add_error(None, exc.message)
        return _form_page(request, form, address, exc.status)
    messages.success(request, "Address updated.")
    return redirect("storefront:account-addresses")


def _address_act(
    request: HttpRequest, address_id: UUID, act: Callable[..., Any], done: str
) -> HttpResponse:
    try:
        act(customer=_customer(request), address_id=address_id)
    except addresses.AddressNotFound as exc:
        raise Http404(exc.message) from exc
    messages.success(request, done)
    return redirect("storefront:account-addresses")


@login_required
@require_POST
def address_delete(request: HttpRequest, address_id: UUID) -> HttpResponse:
    return _address_act(request, address_id, addresses.address_delete, "Address deleted.")


@login_required
@require_POST
def address_default(request: HttpRequest, address_id: UUID) -> HttpResponse:
    return _address_act(
        request, address_id, addresses.address_default_set, "Default address changed."
    )


def _own_address(customer: User, address_id: UUID) -> Address:
    try:
        return addresses.address_get(customer=customer, address_id=address_id)
    except addresses.AddressNotFound as exc:
        raise Http404(exc.message) from exc
