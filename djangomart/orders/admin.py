from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from djangomart.money import format_amount
from djangomart.orders.models import Order, OrderEvent, OrderLine, OrderNeedingAttention
from djangomart.orders.services import order_attention_resolve
from djangomart.payments.models import StripeEvent

MONEY_FIELDS = [
    "currency",
    "subtotal",
    "total",
    "amount_paid",
    "amount_refunded",
    "payment_status",
    "disputed",
]


class OrderLineInline(admin.TabularInline[OrderLine, Order]):
    model = OrderLine
    extra = 0
    fields = readonly_fields = ("sku", "name", "unit_price", "quantity", "line_total")
    can_delete = False

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

    @admin.display(description="total", ordering="total")
    def total_display(self, order: Order) -> str:
        return format_amount(order.total, order.currency)

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
