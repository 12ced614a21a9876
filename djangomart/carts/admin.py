from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from djangomart.carts.models import Cart, CartLine


class CartLineInline(admin.TabularInline[CartLine, Cart]):
    model = CartLine
    fields = ("variant", "quantity", "unit_price", "created_at", "updated_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Cart)
class CartAdmin(admin.ModelAdmin[Cart]):
    """Read-only: carts change through the cart API, under the cart's lock, never here."""

    list_display = ("id", "status", "customer", "order", "revision", "created_at", "updated_at")
    list_filter = ("status",)
    search_fields = ("=id", "customer__email")
    fields = (*list_display, "order_revision", "checkout_seq")
    readonly_fields = fields
    inlines = (CartLineInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Cart]:
        # The list shows each cart's customer and order: one query, not one per row.
        return super().get_queryset(request).select_related("customer", "order")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
