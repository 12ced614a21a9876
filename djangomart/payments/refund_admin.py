"""The Refund list in the admin (registered by payments/admin.py): every refund, whoever
made it, read-only; failed ones can be retried (payments.refund_requests.refund_retry)."""

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from djangomart.core.errors import DomainError
from djangomart.money import format_amount
from djangomart.payments import refund_requests
from djangomart.payments.models import Refund


@admin.register(Refund)
class RefundAdmin(admin.ModelAdmin[Refund]):
    list_display = [
        "refund_id",
        "order_link",
        "amount_display",
        "status",
        "origin",
        "requested_by",
        "created_at",
    ]
    list_filter = ["status", "origin", "created_at"]
    list_select_related = ["order", "requested_by"]
    search_fields = ["id", "stripe_refund_id", "order__id", "stripe_payment_intent_id"]
    date_hierarchy = "created_at"
    actions = ["retry"]
    fields = readonly_fields = (
        "id",
        "order_link",
        "amount_display",
        "status",
        "failure_reason",
        "last_error",
        "reason",
        "note",
        "origin",
        "requested_by",
        "stripe_refund_id",
        "stripe_payment_intent_id",
        "stripe_charge_id",
        "payment",
        "idempotency_key",
        "submit_attempts",
        "submit_next_at",
        "stripe_created",
        "created_at",
        "updated_at",
    )

    @admin.display(description="refund", ordering="created_at")
    def refund_id(self, refund: Refund) -> str:
        return refund.stripe_refund_id or str(refund.pk)

    @admin.display(description="order")
    def order_link(self, refund: Refund) -> SafeString:
        url = reverse("admin:orders_order_change", args=[refund.order_id])
        return format_html("<a href='{}'>{}</a>", url, refund.order_id)

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, refund: Refund) -> str:
        return format_amount(refund.amount, refund.currency)

    @admin.action(description="Retry the selected failed refunds", permissions=["retry"])
    def retry(self, request: HttpRequest, queryset: QuerySet[Refund]) -> None:
        """Each failed (or canceled) refund asked again: a new refund row, sent to Stripe
        now. Others are skipped with a message."""
        user = request.user if isinstance(request.user, User) else None
        for refund in queryset.order_by("created_at", "pk"):
            label = f"Refund {refund.pk}"
            if refund.status not in refund_requests.RETRYABLE:
                messages.warning(
                    request,
                    f"{label} is {refund.status}: only a failed or canceled refund can be retried.",
                )
                continue
            try:
                outcome = refund_requests.refund_retry(
                    refund_id=refund.pk, order_id=refund.order_id, user=user
                )
            except DomainError as exc:
                messages.error(request, f"{label}: {exc.message}")
                continue
            retried = outcome.refund
            done = "retried" if outcome.created else "was already retried"
            if retried.status in refund_requests.RETRYABLE:
                level = messages.ERROR
            elif retried.status == Refund.Status.SUCCEEDED:
                level = messages.SUCCESS
            else:
                level = messages.WARNING
            messages.add_message(request, level, f"{label} {done}: {outcome.message}")

    def has_retry_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return user.has_perm("payments.add_refund") or user.has_perm("payments.retry_refund")

    def has_view_permission(self, request: HttpRequest, obj: Refund | None = None) -> bool:
        # Who may retry a refund may see the list they retry from.
        return super().has_view_permission(request, obj) or self.has_retry_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # refunds are asked for on the order's page (or the staff API)

    def has_change_permission(self, request: HttpRequest, obj: Refund | None = None) -> bool:
        return False  # facts from Stripe, never edited

    def has_delete_permission(self, request: HttpRequest, obj: Refund | None = None) -> bool:
        return False
