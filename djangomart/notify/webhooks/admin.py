"""The admin of outbound webhooks: endpoints configured by staff; deliveries read-only,
with their attempt log and a resend action."""

import json

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from djangomart.core.errors import DomainError
from djangomart.notify.webhooks.models import (
    EVENT_TYPE_CHOICES,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from djangomart.notify.webhooks.services import webhook_delivery_resend
from djangomart.notify.webhooks.signing import body_bytes


class WebhookEndpointForm(forms.ModelForm[WebhookEndpoint]):
    event_types = forms.MultipleChoiceField(
        choices=EVENT_TYPE_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        help_text="The events this endpoint is sent.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "event_types", "enabled", "description"]
        help_texts = {
            "url": "https, on a public host (http and private addresses only in development: "
            "OUTBOUND_WEBHOOK_ALLOW_PRIVATE).",
        }


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin[WebhookEndpoint]):
    form = WebhookEndpointForm
    list_display = ["url", "description", "enabled", "types_display", "created_at"]
    list_filter = ["enabled"]
    search_fields = ["url", "description"]
    readonly_fields = ["secret", "secret_masked", "created_at"]

    def get_fields(
        self, request: HttpRequest, obj: WebhookEndpoint | None = None
    ) -> tuple[str, ...]:
        fields = ("url", "event_types", "enabled", "description")
        if obj is None:
            return fields  # the secret is made on save (an unsaved one would mislead)
        # The secret signs what the shop tells its other systems: whoever reads it can
        # forge an event to them. Viewing the endpoints is not enough to read it.
        secret = "secret" if self.has_change_permission(request, obj) else "secret_masked"
        return (*fields, secret, "created_at")

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # The list page would filter on any of the model's own fields from its query
        # string: ?secret__startswith= answers, one guess at a time, what the secret is.
        if "secret" in lookup.split("__"):
            return False
        return super().lookup_allowed(lookup, value, request)

    @admin.display(description="event types")
    def types_display(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.event_types)

    @admin.display(description="secret")
    def secret_masked(self, endpoint: WebhookEndpoint) -> str:
        return (
            f"whsec_…{endpoint.secret[-4:]} (hidden: shown only to staff who may change "
            "webhook endpoints)"
        )


class WebhookAttemptInline(admin.TabularInline[WebhookAttempt, WebhookDelivery]):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    ordering = ["-started_at", "-pk"]
    fields = readonly_fields = (
        "cycle",
        "number",
        "started_at",
        "duration_ms",
        "status_code",
        "delivered",
        "error",
        "response_body",
    )

    def has_add_permission(self, request: HttpRequest, obj: WebhookDelivery | None = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin[WebhookDelivery]):
    list_display = [
        "id",
        "event_type",
        "endpoint",
        "status",
        "attempts",
        "cycle",
        "next_attempt_at",
        "delivered_at",
        "created_at",
    ]
    list_filter = ["status", "endpoint", "created_at"]
    search_fields = ["event__id", "event__order__id", "endpoint__url"]
    date_hierarchy = "created_at"
    actions = ["resend"]
    inlines = [WebhookAttemptInline]
    fields = readonly_fields = (
        "event_type",
        "event_id",
        "endpoint",
        "status",
        "cycle",
        "attempts",
        "cycle_started_at",
        "next_attempt_at",
        "delivered_at",
        "last_error",
        "created_at",
        "body_pretty",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookDelivery]:
        # The list needs the event's type, not its payload (the detail page loads it).
        return (
            super()
            .get_queryset(request)
            .select_related("event", "endpoint")
            .defer("event__payload")
        )

    @admin.display(description="type", ordering="event__type")
    def event_type(self, delivery: WebhookDelivery) -> str:
        return delivery.event.type

    @admin.display(description="body (as sent)")
    def body_pretty(self, delivery: WebhookDelivery) -> SafeString:
        body = json.loads(body_bytes(delivery.event.payload))
        return format_html("<pre>{}</pre>", json.dumps(body, indent=2, sort_keys=True))

    @admin.action(description="Resend the selected deliveries", permissions=["resend"])
    def resend(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        """Each delivery that ended (delivered, failed, canceled) sent again: the same
        event and body, a new cycle of attempts and retries."""
        for delivery in queryset.order_by("pk"):
            try:
                webhook_delivery_resend(delivery_id=delivery.pk)
            except DomainError as exc:  # a refusal (DeliveryNotResendable): nothing done
                messages.error(request, f"Delivery {delivery.pk} not resent: {exc.message}")
                continue
            messages.success(request, f"Delivery {delivery.pk} queued to be sent again.")

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("notify_webhooks.change_webhookdelivery")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made by the outbox, one per (event, endpoint)

    def has_change_permission(
        self, request: HttpRequest, obj: WebhookDelivery | None = None
    ) -> bool:
        return False  # a log; the resend action is how staff act on it

    def has_view_permission(self, request: HttpRequest, obj: WebhookDelivery | None = None) -> bool:
        return super().has_view_permission(request, obj) or self.has_resend_permission(request)
