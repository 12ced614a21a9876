"""The emails in the admin: read-only, with a resend action (services.notification_resend)."""

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest

from djangomart.notify.emails.models import Notification
from djangomart.notify.emails.services import NotificationInFlight, notification_resend
from djangomart.orders.models import Order

FIELDS = (
    "id",
    "order",
    "kind",
    "cause",
    "status",
    "attempts",
    "last_error",
    "recipient",
    "subject",
    "message_id",
    "queued_at",
    "next_attempt_at",
    "claimed_at",
    "sent_at",
    "resend_count",
    "resent_at",
    "resent_by",
    "pruned_at",
    "event",
    "body_text",
)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin[Notification]):
    list_display = ["queued_at", "kind", "status", "attempts", "order", "recipient", "sent_at"]
    list_filter = ["status", "kind", "queued_at"]
    # The order's id (or its start), the recipient as sent, or the order's email now.
    search_fields = ["order__id", "recipient", "order__email"]
    list_select_related = ["order"]
    date_hierarchy = "queued_at"
    fields = readonly_fields = FIELDS
    actions = ["resend"]

    @admin.display(description="Message-ID")
    def message_id(self, notification: Notification) -> str:
        return notification.message_id

    @admin.action(description="Resend the selected emails", permissions=["resend"])
    def resend(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        user = request.user if isinstance(request.user, User) else None
        done = 0
        for notification in queryset:
            try:
                notification_resend(notification_id=notification.pk, user=user)
            except NotificationInFlight as exc:
                messages.warning(request, f"{notification}: {exc}")
            else:
                done += 1
        if done:
            messages.success(request, f"{done} email(s) queued to be sent again.")

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("notify_emails.resend_notification")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Notification | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Notification | None = None) -> bool:
        return False


class NotificationInline(admin.TabularInline[Notification, Order]):
    """The order's emails on its admin page (orders.admin.OrderAdmin)."""

    model = Notification
    fk_name = "order"
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = "emails"
    fields = readonly_fields = (
        "queued_at",
        "kind",
        "status",
        "attempts",
        "recipient",
        "sent_at",
        "last_error",
    )

    def has_add_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False
