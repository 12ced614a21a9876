from django import forms
from django.contrib import admin
from django.contrib.postgres.fields import ArrayField
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from djangomart.catalog.models import Category, Product, Variant
from djangomart.money import format_amount


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin[Category]):
    list_display = ["name", "slug", "parent"]
    list_filter = [("parent", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["parent"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


class VariantInline(admin.TabularInline[Variant, Product]):
    model = Variant
    extra = 0
    fields = ["sku", "label", "price", "currency", "stock_on_hand", "active"]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin[Product]):
    list_display = ["name", "slug", "category", "active", "variant_count", "updated_at"]
    list_filter = ["active", "category"]
    list_select_related = ["category"]
    search_fields = ["name", "slug", "variants__sku"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "updated_at"]
    inlines = [VariantInline]
    # Image URLs typed without a scheme are https (Django 6's default, chosen now).
    formfield_overrides = {
        ArrayField: {"base_field": forms.URLField(max_length=500, assume_scheme="https")}
    }

    def get_queryset(self, request: HttpRequest) -> QuerySet[Product]:
        return super().get_queryset(request).annotate(variant_count=Count("variants"))

    @admin.display(description="variants", ordering="variant_count")
    def variant_count(self, product: Product) -> int:
        return product.variant_count  # type: ignore[attr-defined,no-any-return]


@admin.register(Variant)
class VariantAdmin(admin.ModelAdmin[Variant]):
    list_display = ["sku", "product", "label", "price_display", "stock_on_hand", "active"]
    list_filter = ["active", "currency", "product__category"]
    list_select_related = ["product"]
    search_fields = ["sku", "product__name", "label"]
    autocomplete_fields = ["product"]
    readonly_fields = ["created_at", "updated_at"]

    @admin.display(description="price", ordering="price")
    def price_display(self, variant: Variant) -> str:
        return format_amount(variant.price, variant.currency)
