"""Read-only inlines for the order's admin page (orders.admin.OrderAdmin): the order's
refunds and disputes, as Stripe's events recorded them. Nothing is edited here: refunds
are asked for through the staff actions, disputes are answered in Stripe's Dashboard."""

from typing import TypeVar

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from djangomart.money import format_amount
from djangomart.orders.models import Order
from djangomart.payments.admin import dispute_due_display
from djangomart.payments.models import Dispute, Refund

M = TypeVar("M", Refund, Dispute)


class _ReadOnlyInline(admin.TabularInline[M, Order]):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False


class RefundInline(_ReadOnlyInline[Refund]):
    model = Refund
    fields = readonly_fields = (
        "created_at",
        "stripe_refund_id",
        "amount_display",
        "status",
        "reason",
        "failure_reason",
        "origin",
        "requested_by",
        "note",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Refund]:
        return super().get_queryset(request).select_related("requested_by")

    @admin.display(description="amount")
    def amount_display(self, refund: Refund) -> str:
        return format_amount(refund.amount, refund.currency)


class DisputeInline(_ReadOnlyInline[Dispute]):
    model = Dispute
    fields = readonly_fields = (
        "dispute_link",
        "status",
        "amount_display",
        "reason",
        "evidence_due",
        "is_charge_refundable",
        "funds_withdrawn",
        "funds_reinstated",
    )

    @admin.display(description="dispute")
    def dispute_link(self, dispute: Dispute) -> SafeString:
        url = reverse("admin:payments_dispute_change", args=[dispute.pk])
        return format_html("<a href='{}'>{}</a>", url, dispute.stripe_dispute_id)

    @admin.display(description="amount")
    def amount_display(self, dispute: Dispute) -> str:
        return format_amount(dispute.amount, dispute.currency)

    @admin.display(description="evidence due by")
    def evidence_due(self, dispute: Dispute) -> SafeString | str:
        return dispute_due_display(dispute)
