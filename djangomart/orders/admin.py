from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from djangomart.money import format_amount
from djangomart.orders.models import Order, OrderEvent, OrderLine, OrderNeedingAttention
from djangomart.orders.services import order_attention_resolve
from djangomart.payments.models import StripeEvent

# Amounts are shown as "178.00 USD" (djangomart.money), never as bare minor units.
MONEY_FIELDS = [
    "currency",
    "subtotal_display",
    "total_display",
    "amount_paid_display",
    "amount_refunded_display",
    "payment_status",
    "disputed",
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
        "message",
    )
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin[Order]):
    list_display = [
        "id",
        "email",
        "status",
        "payment_status",
        "total_display",
        "needs_attention",
        "created_at",
    ]
    list_filter = ["status", "payment_status", "needs_attention", "disputed", "created_at"]
    search_fields = ["id", "email", "stripe_checkout_session_id", "stripe_payment_intent_id"]
    date_hierarchy = "created_at"
    inlines = [OrderLineInline, OrderEventInline]
    readonly_fields = [
        "id",
        "email",
        "customer",
        "status",
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
    ]

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
        return super().change_view(
            request, object_id, form_url, {**read_only, **(extra_context or {})}
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

    @admin.action(description="Mark the attention as resolved (after acting on it)")
    def attention_resolve(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        for order_id in queryset.filter(needs_attention=True).values_list("pk", flat=True):
            order_attention_resolve(order_id=order_id, by=str(request.user))
        messages.success(request, "The selected orders no longer need attention.")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # orders come from checkout, never from the admin

    def has_delete_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False


@admin.register(OrderNeedingAttention)
class OrderNeedingAttentionAdmin(OrderAdmin):
    list_display = ["id", "email", "status", "payment_status", "attention_reasons", "created_at"]
    list_filter = ["status", "payment_status"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Order]:
        return super().get_queryset(request).filter(needs_attention=True)
