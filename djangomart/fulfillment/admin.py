"""The admin's "To ship" list (paid orders waiting for a parcel, oldest first, each with
its pick list) and its aggregated pick list; and the shipments, read-only."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html_join
from django.utils.safestring import SafeString

from djangomart.fulfillment.models import OrderToShip, Shipment, ShipmentLine
from djangomart.fulfillment.selectors import orders_to_ship, pick_list, pick_list_aggregate
from djangomart.orders.admin import OrderAdmin
from djangomart.orders.models import Order


@admin.register(OrderToShip)
class OrderToShipAdmin(OrderAdmin):
    list_display = [
        "id",
        "created_at",
        "email",
        "fulfillment_status",
        "pick_list_display",
        "total_display",
    ]
    list_filter = ["fulfillment_status"]
    ordering = ["created_at", "pk"]
    actions = ["pick_list_action"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Order]:
        return orders_to_ship().prefetch_related("lines")

    @admin.display(description="pick list")
    def pick_list_display(self, order: Order) -> SafeString:
        rows = ((p.quantity, p.sku, p.name) for p in pick_list(order))
        return format_html_join("", "<div>{} x {} <small>({})</small></div>", rows)

    @admin.action(description="Pick list of the selected orders (all their units by SKU)")
    def pick_list_action(self, request: HttpRequest, queryset: QuerySet[Order]) -> HttpResponse:
        orders = list(queryset.order_by("created_at", "pk").prefetch_related("lines"))
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Pick list",
            "orders": [(order, pick_list(order)) for order in orders],
            "totals": pick_list_aggregate(order.pk for order in orders),
        }
        return TemplateResponse(request, "admin/fulfillment/pick_list.html", context)


class ShipmentLineInline(admin.TabularInline[ShipmentLine, Shipment]):
    model = ShipmentLine
    extra = 0
    can_delete = False
    fields = readonly_fields = ("order_line", "quantity")

    def has_add_permission(self, request: HttpRequest, obj: Shipment | None = None) -> bool:
        return False


@admin.register(Shipment)
class ShipmentAdmin(admin.ModelAdmin[Shipment]):
    """Read-only: a shipment is made from its order's page (Ship) or the staff API."""

    list_display = ["shipped_at", "order", "carrier", "tracking_number", "staff_user"]
    list_select_related = ["order", "staff_user"]
    search_fields = ["order__id", "tracking_number", "order__email"]
    list_filter = ["carrier"]
    inlines = [ShipmentLineInline]
    exclude = ["idempotency_key", "request_fingerprint"]

    def get_readonly_fields(self, request: HttpRequest, obj: Shipment | None = None) -> list[str]:
        hidden = set(self.exclude or [])
        return [f.name for f in Shipment._meta.concrete_fields if f.name not in hidden]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Shipment | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Shipment | None = None) -> bool:
        return False
