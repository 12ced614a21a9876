import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from djangomart.money import format_amount
from djangomart.payments import refund_admin  # noqa: F401 (registers RefundAdmin)
from djangomart.payments.inbox import stripe_event_replay
from djangomart.payments.models import (
    Dispute,
    EventNeedingAttention,
    OpenDispute,
    Payment,
    ReconciliationRun,
    StripeEvent,
)


@admin.register(StripeEvent)
class StripeEventAdmin(admin.ModelAdmin[StripeEvent]):
    list_display = [
        "id",
        "type",
        "status",
        "delivery_count",
        "attempts",
        "order_link",
        "stripe_created",
        "received_at",
    ]
    list_filter = ["status", "type", "livemode", "received_at"]
    search_fields = ["id", "object_id", "checkout_session_id", "payment_intent_id", "order__id"]
    date_hierarchy = "received_at"
    list_select_related = ["order"]
    actions = ["replay"]
    fields = readonly_fields = (
        "id",
        "type",
        "status",
        "order_link",
        "api_version",
        "livemode",
        "stripe_created",
        "received_at",
        "processed_at",
        "delivery_count",
        "attempts",
        "object_id",
        "checkout_session_id",
        "payment_intent_id",
        "last_error",
        "last_traceback",
        "payload_pruned_at",
        "payload_pretty",
    )

    @admin.display(description="order")
    def order_link(self, event: StripeEvent) -> SafeString | str:
        if event.order_id is None:
            return "-"
        url = reverse("admin:orders_order_change", args=[event.order_id])
        return format_html("<a href='{}'>{}</a>", url, event.order_id)

    @admin.display(description="payload")
    def payload_pretty(self, event: StripeEvent) -> SafeString:
        return format_html("<pre>{}</pre>", json.dumps(event.payload, indent=2, sort_keys=True))

    @admin.action(description="Replay: process the selected events again", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[StripeEvent]) -> None:
        count = 0
        for event in queryset.exclude(status=StripeEvent.Status.PROCESSED):
            count += stripe_event_replay(event_id=event.pk)
        messages.success(
            request,
            f"{count} event(s) queued for processing; processed ones and those whose payload "
            "was pruned are skipped.",
        )

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("payments.replay_stripeevent")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: StripeEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: StripeEvent | None = None) -> bool:
        return False


@admin.register(EventNeedingAttention)
class EventNeedingAttentionAdmin(StripeEventAdmin):
    def get_queryset(self, request: HttpRequest) -> QuerySet[StripeEvent]:
        statuses = [
            StripeEvent.Status.UNMATCHED,
            StripeEvent.Status.DEAD,
            StripeEvent.Status.FAILED,
        ]
        return super().get_queryset(request).filter(status__in=statuses)


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin[Payment]):
    list_display = [
        "stripe_payment_intent_id",
        "order",
        "amount_received_display",
        "succeeded",
        "processing",
        "async_failed",
    ]
    list_select_related = ["order"]
    search_fields = ["stripe_payment_intent_id", "order__id"]
    fields = readonly_fields = tuple(
        "amount_received_display" if f.name == "amount_received" else f.name
        for f in Payment._meta.fields
    )

    @admin.display(description="amount received", ordering="amount_received")
    def amount_received_display(self, payment: Payment) -> str:
        # Stripe names the currency with the first amount; until then it is the order's.
        return format_amount(payment.amount_received, payment.currency or payment.order.currency)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Payment | None = None) -> bool:
        return False  # a page to read: no Save button

    def has_delete_permission(self, request: HttpRequest, obj: Payment | None = None) -> bool:
        return False  # money facts are derived from these rows


def _order_link(order_id: object) -> SafeString:
    url = reverse("admin:orders_order_change", args=[order_id])
    return format_html("<a href='{}'>{}</a>", url, order_id)


@admin.register(Dispute)
class DisputeAdmin(admin.ModelAdmin[Dispute]):
    """Every dispute and inquiry, as Stripe last told us (payments.disputes). A page to
    read: disputes are answered in Stripe's Dashboard, and their rows follow its events."""

    list_display = [
        "stripe_dispute_id",
        "order_link",
        "amount_display",
        "reason",
        "status",
        "evidence_due",
        "funds_withdrawn",
        "funds_reinstated",
    ]
    list_filter = ["status", "reason", "funds_withdrawn"]
    ordering = ["-created_at", "-pk"]
    search_fields = [
        "stripe_dispute_id",
        "stripe_payment_intent_id",
        "stripe_charge_id",
        "order__id",
    ]
    list_select_related = ["order"]
    fields = readonly_fields = (
        "stripe_dispute_id",
        "order_link",
        "status",
        "amount_display",
        "reason",
        "evidence_due",
        "is_charge_refundable",
        "funds_withdrawn",
        "funds_reinstated",
        "stripe_payment_intent_id",
        "stripe_charge_id",
        "stripe_created",
        "snapshot_event_id",
        "snapshot_created",
        "created_at",
        "updated_at",
    )

    @admin.display(description="order", ordering="order")
    def order_link(self, dispute: Dispute) -> SafeString:
        return _order_link(dispute.order_id)

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, dispute: Dispute) -> str:
        return format_amount(dispute.amount, dispute.currency)

    @admin.display(description="evidence due by", ordering="evidence_due_by")
    def evidence_due(self, dispute: Dispute) -> SafeString | str:
        return dispute_due_display(dispute)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Dispute | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Dispute | None = None) -> bool:
        return False


def dispute_due_display(dispute: Dispute) -> SafeString | str:
    """The evidence deadline, and for an open dispute how long is left, or "OVERDUE"."""
    if dispute.evidence_due_by is None:
        return "-"
    when = f"{dispute.evidence_due_by:%Y-%m-%d %H:%M} UTC"
    if not dispute.is_open:
        return when
    left = dispute.evidence_due_by - timezone.now()
    if left.total_seconds() < 0:
        return format_html("<strong style='color:#ba2121'>{} (OVERDUE)</strong>", when)
    days, hours = left.days, left.seconds // 3600
    return f"{when} (in {days} d {hours} h)" if days else f"{when} (in {hours} h)"


@admin.register(OpenDispute)
class OpenDisputeAdmin(DisputeAdmin):
    """The disputes waiting for an answer, the soonest evidence deadline (overdue ones)
    first: what staff work through."""

    list_filter = ["status", "reason"]
    # PostgreSQL sorts a dispute without a deadline after every dated one.
    ordering = ["evidence_due_by", "pk"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Dispute]:
        return super().get_queryset(request).filter(status__in=Dispute.OPEN)


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(admin.ModelAdmin[ReconciliationRun]):
    """What each `manage.py reconcile` or periodic run did (docs: "Webhooks were down")."""

    list_display = [
        "started_at",
        "finished_at",
        "trigger",
        "status",
        "events_from",
        "cursor",
        "events_seen",
        "events_added",
        "orders_synced",
        "error_count",
    ]
    list_filter = ["status", "trigger", "started_at"]
    date_hierarchy = "started_at"
    fields = readonly_fields = (
        "started_at",
        "finished_at",
        "trigger",
        "status",
        "events_from",
        "cursor",
        "events_seen",
        "events_added",
        "orders_synced",
        "errors_list",
    )

    @admin.display(description="errors")
    def error_count(self, run: ReconciliationRun) -> int:
        return len(run.errors)

    @admin.display(description="errors")
    def errors_list(self, run: ReconciliationRun) -> SafeString | str:
        if not run.errors:
            return "-"
        lines = []
        for error in run.errors:
            event = f"{error['event']}: " if error.get("event") else ""
            lines.append(f"[{error.get('stage', '?')}] {event}{error.get('error', '')}")
        return format_html("<pre>{}</pre>", "\n".join(lines))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: ReconciliationRun | None = None
    ) -> bool:
        return False  # a record of what happened

    def has_delete_permission(
        self, request: HttpRequest, obj: ReconciliationRun | None = None
    ) -> bool:
        return False
