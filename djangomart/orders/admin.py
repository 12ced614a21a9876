import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote, unquote
from django.contrib.auth import get_permission_codename
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from djangomart.accounts.countries import COUNTRIES
from djangomart.core.errors import DomainError
from djangomart.fulfillment.admin_ship import SHIP_PERMISSION, ship_view
from djangomart.fulfillment.inlines import ShipmentInline
from djangomart.fulfillment.services import shipment_refusals
from djangomart.money import format_amount, format_number, parse_amount
from djangomart.notify.emails.admin import NotificationInline
from djangomart.orders.lines import LineRef
from djangomart.orders.models import Order, OrderEvent, OrderLine, OrderNeedingAttention
from djangomart.orders.selectors import orders_timeline_seen
from djangomart.orders.services import (
    STAFF_REASON_MAX_LENGTH,
    StaffReasonInvalid,
    order_attention_resolve,
)
from djangomart.payments import refund_requests
from djangomart.payments.inlines import DisputeInline, RefundInline
from djangomart.payments.models import Refund, StripeEvent
from djangomart.payments.staff import order_staff_accept_paid, order_staff_cancel

# Amounts are shown as "178.00 USD" (djangomart.money), never as bare minor units.
MONEY_FIELDS = [
    "currency",
    "subtotal_display",
    "total_display",
    "amount_paid_display",
    "amount_refunded_display",
    "payment_status",
    "disputed",
    "dispute_lost",
    "amount_lost_to_disputes_display",
]


def _money(amount: int | None, line: OrderLine) -> str:
    # A re-displayed form (after a refused POST) can hold a blank line.
    if amount is None or line.order_id is None:
        return "-"
    return format_amount(amount, line.order.currency)


class OrderLineInline(admin.TabularInline[OrderLine, Order]):
    model = OrderLine
    extra = 0
    fields = readonly_fields = (
        "sku",
        "name",
        "unit_price_display",
        "quantity",
        "line_total_display",
    )
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderLine]:
        # The currency is the order's: one join, not a query per line.
        return super().get_queryset(request).select_related("order")

    @admin.display(description="unit price")
    def unit_price_display(self, line: OrderLine) -> str:
        return _money(line.unit_price, line)

    @admin.display(description="line total")
    def line_total_display(self, line: OrderLine) -> str:
        return _money(line.line_total, line)

    def has_add_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False


class OrderEventInline(admin.TabularInline[OrderEvent, Order]):
    model = OrderEvent
    verbose_name_plural = "timeline"
    extra = 0
    fields = readonly_fields = (
        "created_at",
        "kind",
        "from_status",
        "to_status",
        "stripe_event_id",
        "staff_user",
        "message",
    )
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderEvent]:
        return super().get_queryset(request).select_related("staff_user")

    def has_add_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False


# A timeline entry's id is a bigint: a larger number in a form is not one.
MAX_ID = 2**63 - 1
# Reason codes as order_flag writes them; anything else in a submitted form is not one.
_REASON_CODE = re.compile(r"^[a-z0-9_]{1,64}$")


class StaffReasonForm(forms.Form):
    """Why a staff member acts; the service checks the same rule (staff_reason_clean)."""

    reason = forms.CharField(
        max_length=STAFF_REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Goes on the order's timeline with your name.",
    )


class ReasonCodesField(forms.MultipleChoiceField):
    """Reason codes the page showed: the choices are what the form was rendered with."""

    def valid_value(self, value: str) -> bool:
        return bool(_REASON_CODE.match(value)) and super().valid_value(value)


class AttentionResolveForm(StaffReasonForm):
    """The reasons shown when the page was rendered travel with the form (`shown`, and
    `seen_through`, the last timeline entry shown): only those can be cleared."""

    shown = forms.MultipleChoiceField(widget=forms.MultipleHiddenInput, required=False)
    reasons = ReasonCodesField(
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label="Resolved reasons",
        help_text="Only the reasons ticked here are cleared; any raised since stay.",
    )
    seen_through = forms.IntegerField(widget=forms.HiddenInput, min_value=0, max_value=MAX_ID)
    field_order = ["reasons", "reason"]

    def __init__(self, *args: Any, shown: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reason"].label = "What you did"
        choices = [(code, code) for code in shown if _REASON_CODE.match(code)]
        for name in ("shown", "reasons"):
            field = self.fields[name]
            assert isinstance(field, forms.MultipleChoiceField)
            field.choices = choices


class RefundForm(forms.Form):
    """A staff refund (payments.refund_requests.refund_request decides). The amount is
    typed in major units (12.50) and starts at all that is refundable; `request_key`,
    made when the page is shown, is the request's idempotency key, so that submitting
    the page twice (a double-click, a reload) makes one refund."""

    amount = forms.CharField(max_length=32)
    reason = forms.ChoiceField(
        choices=[("", "(none)"), *[(r, r.replace("_", " ")) for r in refund_requests.REASONS]],
        required=False,
        help_text="Stripe's refund reason.",
    )
    note = forms.CharField(
        max_length=refund_requests.NOTE_MAX_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Goes on the order's timeline with your name.",
    )
    request_key = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args: Any, order: Order, refundable: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.currency = order.currency
        # Units going back to stock with the refund (orders.returns): one field per line.
        self.lines = list(order.lines.order_by("pk"))
        for line in self.lines:
            self.fields[f"restock_{line.pk}"] = forms.IntegerField(
                min_value=0,
                max_value=line.quantity,
                required=False,
                initial=0,
                label=f"Back to stock: {line.sku}",
                help_text=f"Units of {line.name} that came back or never shipped "
                f"({line.quantity_returnable} of {line.quantity} can).",
            )
        money = format_amount(refundable, order.currency)
        self.fields["amount"].label = f"Amount ({order.currency.upper()})"
        self.fields[
            "amount"
        ].help_text = (
            f"At most {money} is refundable (paid, minus refunds succeeded or on their way)."
        )
        self.initial.setdefault("amount", format_number(refundable, order.currency))
        self.initial.setdefault("request_key", uuid.uuid4())

    def clean_amount(self) -> int:
        try:
            amount = parse_amount(self.cleaned_data["amount"], self.currency)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        if amount < 1:
            raise forms.ValidationError("The amount must be more than zero.")
        return amount

    def restock(self) -> list[LineRef]:
        quantities = ((line.pk, self.cleaned_data.get(f"restock_{line.pk}")) for line in self.lines)
        return [(pk, int(quantity)) for pk, quantity in quantities if quantity]


@dataclass(frozen=True)
class StaffAction:
    """A button on the order page: its URL when it applies, else why it does not."""

    label: str
    url: str | None
    why_not: str = ""


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin[Order]):
    list_display = [
        "id",
        "email",
        "status",
        "payment_status",
        "fulfillment_status",
        "total_display",
        "needs_attention",
        "created_at",
    ]
    list_filter = [
        "status",
        "payment_status",
        "fulfillment_status",
        "needs_attention",
        "disputed",
        "created_at",
    ]
    search_fields = ["id", "email", "stripe_checkout_session_id", "stripe_payment_intent_id"]
    date_hierarchy = "created_at"
    inlines = [
        OrderLineInline,
        ShipmentInline,
        RefundInline,
        DisputeInline,
        NotificationInline,
        OrderEventInline,
    ]
    readonly_fields = [
        "id",
        "email",
        "customer",
        "shipping_address_display",
        "status",
        "fulfillment_status",
        *MONEY_FIELDS,
        "needs_attention",
        "attention_reasons",
        "stripe_checkout_session_id",
        "stripe_payment_intent_id",
        "expires_at",
        "success_url",
        "cancel_url",
        "checkout_url",
        "created_at",
        "updated_at",
        "related_stripe_events",
        "reconcile_next_at",
        "reconcile_attempts",
    ]
    exclude = [
        "access_token",
        "idempotency_key",
        "request_fingerprint",
        "stock_released",
        "last_synced_at",
        "shipping_address",  # shown as shipping_address_display
    ]

    @admin.display(description="shipping address")
    def shipping_address_display(self, order: Order) -> str:
        # The snapshot taken at checkout (a copy: editing the customer's saved address
        # never changes it), one line per part, as a label would print it.
        snapshot = order.shipping_address
        if not isinstance(snapshot, dict):
            return "—"
        country = str(snapshot.get("country", ""))
        city_line = " ".join(
            part for part in (snapshot.get("postal_code"), snapshot.get("city")) if part
        )
        lines = [
            snapshot.get("name"),
            snapshot.get("line1"),
            snapshot.get("line2"),
            city_line,
            snapshot.get("region"),
            f"{COUNTRIES.get(country, country)} ({country})" if country else "",
            f"Phone: {snapshot['phone']}" if snapshot.get("phone") else "",
        ]
        return format_html_join("", "<div>{}</div>", ((str(line),) for line in lines if line))

    @admin.display(description="subtotal")
    def subtotal_display(self, order: Order) -> str:
        return format_amount(order.subtotal, order.currency)

    @admin.display(description="total", ordering="total")
    def total_display(self, order: Order) -> str:
        return format_amount(order.total, order.currency)

    @admin.display(description="amount paid")
    def amount_paid_display(self, order: Order) -> str:
        return format_amount(order.amount_paid, order.currency)

    @admin.display(description="amount refunded")
    def amount_refunded_display(self, order: Order) -> str:
        return format_amount(order.amount_refunded, order.currency)

    @admin.display(description="amount lost to disputes")
    def amount_lost_to_disputes_display(self, order: Order) -> str:
        return format_amount(order.amount_lost_to_disputes, order.currency)

    def get_readonly_fields(self, request: HttpRequest, obj: Order | None = None) -> list[str]:
        # Every column is read-only, also ones added later and not listed above: an
        # order changes only through its services (and the admin actions).
        shown = list(self.readonly_fields)
        hidden = set(self.exclude or [])
        fields = (f.name for f in Order._meta.concrete_fields)
        return shown + [f for f in fields if f not in hidden and f not in shown]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # A page to read, not a form: no Save buttons (Close instead). The change
        # permission stays, so that the actions that need it keep working.
        read_only = {"show_save": False, "show_save_and_continue": False}
        order = self.get_object(request, unquote(object_id))
        actions: list[StaffAction] = []
        if order is not None and self.has_staff_action_permission(request, order):
            actions += self._staff_actions(order)
        if order is not None and self.has_ship_permission(request):
            actions.append(self._ship_action(order))
        if order is not None and self.has_refund_permission(request):
            actions.append(self._refund_action(order))
        if actions:
            read_only["staff_actions"] = actions  # type: ignore[assignment]
        return super().change_view(
            request, object_id, form_url, {**read_only, **(extra_context or {})}
        )

    change_form_template = "admin/orders/order/change_form.html"

    def _url(self, name: str, *args: Any) -> str:
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return reverse(f"admin:{info}_{name}", args=args, current_app=self.admin_site.name)

    def _staff_actions(self, order: Order) -> list[StaffAction]:
        pk = quote(order.pk)
        not_pending = f"The order is {order.status}, not pending."
        not_flagged = "The order does not need attention."
        pending, flagged = order.is_pending(), order.needs_attention
        return [
            StaffAction("Cancel order", self._url("cancel", pk) if pending else None, not_pending),
            StaffAction(
                "Accept as paid",
                self._url("accept_paid", pk) if pending and flagged else None,
                not_flagged if pending else not_pending,
            ),
            StaffAction(
                "Resolve attention", self._url("resolve", pk) if flagged else None, not_flagged
            ),
        ]

    def _refund_action(self, order: Order) -> StaffAction:
        why_not = _refund_not_applicable(order)
        url = None if why_not else self._url("refund", quote(order.pk))
        return StaffAction("Refund", url, why_not or "")

    def _ship_action(self, order: Order) -> StaffAction:
        blocking = [r for r in shipment_refusals(order) if not r.overridable]
        why_not = blocking[0].message if blocking else ""
        url = None if why_not else self._url("ship", quote(order.pk))
        return StaffAction("Ship", url, why_not)

    def has_ship_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        """Shipping needs the Shipment's "Can add shipment" (as the staff API does)."""
        return bool(request.user.has_perm(SHIP_PERMISSION))

    def ship_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return ship_view(self, request, object_id)

    def get_urls(self) -> list[URLPattern]:
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view  # staff login, never cached, CSRF-checked
        return [
            path("<path:object_id>/ship/", wrap(self.ship_view), name=f"{info}_ship"),
            path("<path:object_id>/refund/", wrap(self.refund_view), name=f"{info}_refund"),
            path("<path:object_id>/cancel/", wrap(self.cancel_view), name=f"{info}_cancel"),
            path(
                "<path:object_id>/accept-paid/",
                wrap(self.accept_paid_view),
                name=f"{info}_accept_paid",
            ),
            path("<path:object_id>/resolve/", wrap(self.resolve_view), name=f"{info}_resolve"),
            *super().get_urls(),
        ]

    def has_staff_action_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        """The staff actions (the buttons and the bulk action) change an Order, whichever
        admin shows it: they need the Order's own change permission ("Can change order"),
        never only a proxy's (OrderNeedingAttention's "Can change order needing
        attention", given to work the attention list)."""
        opts = Order._meta
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}")

    def has_refund_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        """Refunding needs the Refund's "Can add refund" (as the staff API does), not the
        Order's change permission."""
        opts = Refund._meta
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('add', opts)}")

    def _order_for_action(
        self,
        request: HttpRequest,
        object_id: str,
        permitted: Callable[[HttpRequest, Order], bool] | None = None,
    ) -> Order | HttpResponse:
        if request.method not in ("GET", "HEAD", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        order = self.get_object(request, unquote(object_id))
        if order is None:
            messages.warning(request, f"No order with id {object_id!r}.")
            return HttpResponseRedirect(self._url("changelist"))
        if not (permitted or self.has_staff_action_permission)(request, order):
            raise PermissionDenied
        return order

    def _action_page(
        self,
        request: HttpRequest,
        order: Order,
        form: forms.Form,
        *,
        title: str,
        intro: str,
        submit: str,
        applies: str | None,
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "order": order,
            "total": format_amount(order.total, order.currency),
            "paid": format_amount(order.amount_paid, order.currency),
            "refunded": format_amount(order.amount_refunded, order.currency),
            "form": form,
            "title": title,
            "intro": intro,
            "submit": submit,
            "not_applicable": applies,
            "change_url": self._url("change", quote(order.pk)),
        }
        return TemplateResponse(request, "admin/orders/order/staff_action.html", context)

    def _staff_action(
        self,
        request: HttpRequest,
        object_id: str,
        do: Callable[[Order, User | None, str], tuple[int, str]],
        *,
        title: str,
        intro: str,
        submit: str,
        not_applicable: Callable[[Order], str | None],
    ) -> HttpResponse:
        """A confirmation form with the required reason; the service decides."""
        order = self._order_for_action(request, object_id)
        if isinstance(order, HttpResponse):
            return order
        form = StaffReasonForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            user = request.user if isinstance(request.user, User) else None
            try:
                messages.add_message(request, *do(order, user, form.cleaned_data["reason"]))
            except StaffReasonInvalid as exc:
                form.add_error("reason", exc.message)
            except DomainError as exc:
                messages.error(request, exc.message)
            if form.is_valid():
                return HttpResponseRedirect(self._url("change", quote(order.pk)))
        return self._action_page(
            request,
            order,
            form,
            title=title,
            intro=intro,
            submit=submit,
            applies=not_applicable(order),
        )

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def do(order: Order, user: User | None, reason: str) -> tuple[int, str]:
            outcome = order_staff_cancel(order_id=order.pk, user=user, reason=reason)
            ended = outcome.order
            if outcome.ended_by == "failed":
                done = (
                    "The order failed because the customer's bank debit failed at Stripe; its "
                    "stock was released. No cancel was needed."
                )
            elif outcome.ended_by == "expired":
                done = (
                    "The order's Checkout Session expired while you canceled it: the order is "
                    "expired and its stock released. Your reason is on the timeline."
                )
            else:
                done = "The order was canceled and its stock released."
            if ended.amount_paid:
                paid = format_amount(ended.amount_paid, ended.currency)
                done = f"{done} Stripe received {paid} for it: refund it with the Refund button."
            return messages.SUCCESS, done

        return self._staff_action(
            request,
            object_id,
            do,
            title="Cancel order",
            intro="The Checkout Session is expired at Stripe first, so that nobody can pay it; "
            "if the customer already paid (or submitted a bank debit), the order is not "
            "canceled and the payment is applied instead. The reserved stock is released.",
            submit="Cancel the order",
            not_applicable=lambda o: None if o.is_pending() else f"The order is {o.status}.",
        )

    def accept_paid_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        def do(order: Order, user: User | None, reason: str) -> tuple[int, str]:
            outcome = order_staff_accept_paid(order_id=order.pk, user=user, reason=reason)
            if outcome.paid_by_stripe:
                return (
                    messages.SUCCESS,
                    "Stripe's Checkout Session had paid the order: applied as a payment.",
                )
            if outcome.warning:
                return messages.WARNING, outcome.warning
            return (
                messages.SUCCESS,
                "The order was accepted as paid and its stock sold. Its attention reasons "
                "stay until you resolve them.",
            )

        def not_applicable(order: Order) -> str | None:
            if not order.is_pending():
                return f"The order is {order.status}."
            return None if order.needs_attention else "The order does not need attention."

        return self._staff_action(
            request,
            object_id,
            do,
            title="Accept as paid",
            intro="After checking the money in Stripe's dashboard: the order becomes paid and "
            "its reserved stock is sold. A payment Stripe already has for it is applied "
            "normally instead; then its open Checkout Session is expired, so that the customer "
            "cannot pay twice.",
            submit="Accept as paid",
            not_applicable=not_applicable,
        )

    def refund_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The refund form (GET) and the refund (POST only, CSRF-checked): the amount,
        Stripe's reason and a note; payments.refund_requests decides and asks Stripe."""
        order = self._order_for_action(request, object_id, self.has_refund_permission)
        if isinstance(order, HttpResponse):
            return order
        refundable = refund_requests.refundable(order)  # shown; decided under the lock
        data = request.POST if request.method == "POST" else None
        form = RefundForm(data, order=order, refundable=refundable)
        if form.is_valid():
            user = request.user if isinstance(request.user, User) else None
            try:
                outcome = refund_requests.refund_request(
                    order_id=order.pk,
                    amount=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"] or None,
                    note=form.cleaned_data["note"],
                    user=user,
                    idempotency_key=f"admin:{form.cleaned_data['request_key']}",
                    restock=form.restock(),
                )
            except refund_requests.RefundInvalid as exc:
                location = str(exc.extra["details"][0]["location"])
                form.add_error(location if location in form.fields else None, exc.message)
            except refund_requests.IdempotencyKeyReused:
                # The page was sent again with other values after its refund was made.
                messages.error(
                    request,
                    "This form was already used for another refund of this order; nothing "
                    "was refunded now. Open the Refund page again for a new refund.",
                )
            except DomainError as exc:
                messages.error(request, exc.message)
            else:
                messages.add_message(request, *_refund_message(outcome))
            if form.is_valid():
                return HttpResponseRedirect(self._url("change", quote(order.pk)))
        return self._action_page(
            request,
            order,
            form,
            title="Refund",
            intro="The refund is recorded first, then Stripe is asked to refund the customer's "
            "payment. If Stripe cannot be reached it is sent again automatically (one refund "
            "at Stripe, whatever happens); if Stripe refuses it, it is marked failed with "
            "Stripe's reason and can be retried from the Refunds list. Units entered under "
            "“Back to stock” go back on the shelf with the refund (docs/fulfillment.md).",
            submit="Refund",
            applies=_refund_not_applicable(order),
        )

    def resolve_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        order = self._order_for_action(request, object_id)
        if isinstance(order, HttpResponse):
            return order
        # What has been seen is read before the reasons shown: a flag committed in
        # between is then after `seen_through`, and not cleared.
        seen_through = orders_timeline_seen([order.pk])[order.pk]
        order.refresh_from_db(fields=["needs_attention", "attention_reasons"])
        if request.method == "POST":
            form = AttentionResolveForm(request.POST, shown=request.POST.getlist("shown"))
        else:
            shown = list(order.attention_reasons)
            form = AttentionResolveForm(
                shown=shown,
                initial={"shown": shown, "reasons": shown, "seen_through": seen_through},
            )
        if form.is_valid():
            user = request.user if isinstance(request.user, User) else None
            try:
                cleared = order_attention_resolve(
                    order_id=order.pk,
                    user=user,
                    reasons=form.cleaned_data["reasons"],
                    note=form.cleaned_data["reason"],
                    seen_through=form.cleaned_data["seen_through"],
                )
            except StaffReasonInvalid as exc:
                form.add_error("reason", exc.message)
            except DomainError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, _resolved_message(order.pk, cleared))
            if form.is_valid():
                return HttpResponseRedirect(self._url("change", quote(order.pk)))
        not_flagged = None if order.needs_attention else "The order does not need attention."
        return self._action_page(
            request,
            order,
            form,
            title="Resolve attention",
            intro="Clears the reasons you tick, after you acted on them (see "
            "docs/payments.md). A reason raised after this page was shown is not cleared.",
            submit="Mark as resolved",
            applies=not_flagged,
        )

    @admin.display(description="Stripe events")
    def related_stripe_events(self, order: Order) -> SafeString:
        # Only processed events are linked to their order: a failing handler's link is
        # rolled back, and ignored types are never linked. So also list every event
        # about the order's Checkout Session or payment intents.
        about = Q(order=order)
        if order.stripe_checkout_session_id:
            about |= Q(checkout_session_id=order.stripe_checkout_session_id)
        intents = set(order.payments.values_list("stripe_payment_intent_id", flat=True))
        if order.stripe_payment_intent_id:
            intents.add(order.stripe_payment_intent_id)
        if intents:
            about |= Q(payment_intent_id__in=intents)
        events = StripeEvent.objects.filter(about).order_by("stripe_created", "received_at")
        return format_html_join(
            "",
            "<div><a href='{}'>{}</a> {} ({})</div>",
            (
                (
                    # quote(): the admin reads "_3C" in an id like evt_3C... as an escape.
                    reverse("admin:payments_stripeevent_change", args=[quote(e.pk)]),
                    e.pk,
                    e.type,
                    e.status,
                )
                for e in events
            ),
        ) or format_html("<span>{}</span>", "none")

    actions = ["attention_resolve"]

    @admin.action(
        description="Mark the attention as resolved (after acting on it)",
        permissions=["staff_action"],
    )
    def attention_resolve(
        self, request: HttpRequest, queryset: QuerySet[Order]
    ) -> TemplateResponse | None:
        """First a confirmation page listing each order's reasons (carried as hidden
        inputs), then, from that page, clears only those: a reason raised after the page
        was shown stays."""
        if request.POST.get("post") == "yes":
            form = StaffReasonForm(request.POST)
            if form.is_valid():
                self._attention_resolve_selected(request, queryset, form.cleaned_data["reason"])
                return None
            # The note was missing: the same page again, with what it showed.
            shown = {
                order.pk: (request.POST.getlist(f"reasons-{order.pk}"),
                           request.POST.get(f"seen-{order.pk}", "0"))
                for order in queryset
            }  # fmt: skip
        else:
            form = StaffReasonForm()
            # What has been seen is read before the reasons shown (see resolve_view).
            seen = orders_timeline_seen(queryset.values_list("pk", flat=True))
            shown = {
                order.pk: (list(order.attention_reasons), str(seen.get(order.pk, 0)))
                for order in queryset.filter(needs_attention=True)
            }
        orders = [(order, *shown[order.pk]) for order in queryset.filter(pk__in=list(shown))]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Mark the attention as resolved",
            "orders": orders,
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/orders/order/attention_resolve.html", context)

    def _attention_resolve_selected(
        self, request: HttpRequest, queryset: QuerySet[Order], note: str
    ) -> None:
        user = request.user if isinstance(request.user, User) else None
        for order in queryset:
            reasons = [r for r in request.POST.getlist(f"reasons-{order.pk}") if r]
            seen = request.POST.get(f"seen-{order.pk}", "")
            try:
                cleared = order_attention_resolve(
                    order_id=order.pk,
                    user=user,
                    reasons=reasons,
                    note=note,
                    seen_through=min(int(seen), MAX_ID) if seen.isascii() and seen.isdigit() else 0,
                )
            except DomainError as exc:
                messages.error(request, f"Order {order.pk}: {exc.message}")
            else:
                messages.success(request, _resolved_message(order.pk, cleared))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # orders come from checkout, never from the admin

    def has_delete_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False


def _refund_not_applicable(order: Order) -> str | None:
    if not order.amount_paid:
        return "No money was received for this order."
    if refund_requests.refundable(order) <= 0:
        return "Nothing is left to refund (refunds succeeded or on their way)."
    return None


def _refund_message(outcome: refund_requests.RefundOutcome) -> tuple[int, str]:
    refund = outcome.refund
    text = outcome.message
    if not outcome.created:
        text = f"This refund was already asked for (the form was sent twice): {text}"
    if refund.status == Refund.Status.SUCCEEDED:
        return messages.SUCCESS, text
    if refund.status in refund_requests.RETRYABLE:
        return messages.ERROR, text
    return messages.WARNING if refund.last_error else messages.SUCCESS, text


def _resolved_message(order_id: UUID, cleared: list[str]) -> str:
    order = Order.objects.get(pk=order_id)
    if not cleared and order.needs_attention:
        return (
            f"Order {order_id}: nothing cleared; what you saw was flagged again or resolved "
            "after the page was shown. Still needs attention: " + ", ".join(order.attention_reasons)
        )
    done = f"resolved {', '.join(cleared)}" if cleared else "no longer needs attention"
    if order.needs_attention:
        return f"Order {order_id}: {done}; still needs attention: " + ", ".join(
            order.attention_reasons
        )
    return f"Order {order_id}: {done}; no longer needs attention."


@admin.register(OrderNeedingAttention)
class OrderNeedingAttentionAdmin(OrderAdmin):
    list_display = ["id", "email", "status", "payment_status", "attention_reasons", "created_at"]
    list_filter = ["status", "payment_status"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Order]:
        return super().get_queryset(request).filter(needs_attention=True)
