"""The order page's shipments (orders.admin.OrderAdmin), read-only: a shipment is made
with the Ship action, never edited."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from djangomart.fulfillment.models import Shipment
from djangomart.orders.models import Order


class ShipmentInline(admin.TabularInline[Shipment, Order]):
    model = Shipment
    extra = 0
    can_delete = False
    show_change_link = False
    fields = readonly_fields = (
        "shipped_at",
        "carrier",
        "tracking",
        "contents",
        "staff_user",
        "overridden",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Shipment]:
        return (
            super()
            .get_queryset(request)
            .select_related("staff_user")
            .prefetch_related("lines__order_line")
        )

    def has_add_permission(self, request: HttpRequest, obj: Order | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Whoever may see the order sees how it shipped.
        return True

    @admin.display(description="tracking")
    def tracking(self, shipment: Shipment) -> SafeString | str:
        if shipment.tracking_url:
            return format_html(
                '<a href="{}" rel="noopener noreferrer">{}</a>',
                shipment.tracking_url,
                shipment.tracking_number or shipment.tracking_url,
            )
        return shipment.tracking_number or "—"

    @admin.display(description="contents")
    def contents(self, shipment: Shipment) -> str:
        return ", ".join(f"{sl.quantity} x {sl.order_line.sku}" for sl in shipment.lines.all())

    @admin.display(description="overridden")
    def overridden(self, shipment: Shipment) -> str:
        refusals = shipment.override.get("refusals") or []
        if not refusals:
            return "—"
        return f"{', '.join(refusals)}: {shipment.override.get('reason') or 'no reason given'}"
