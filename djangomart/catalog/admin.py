import uuid
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.postgres.fields import ArrayField
from django.db.models import Count, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from djangomart.catalog.models import Category, Product, StockMovement, Variant
from djangomart.catalog.selectors import variants_low_on_stock
from djangomart.catalog.services import (
    STAFF_REASONS,
    StockChangeRefused,
    stock_change,
    stock_change_check,
    variants_lock,
)
from djangomart.money import format_amount

Reason = StockMovement.Reason


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin[Category]):
    list_display = ["name", "slug", "parent"]
    list_filter = [("parent", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["parent"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


class FormTokenField(forms.UUIDField):
    """A hidden one-time token, new each time the form is rendered (`initial` is called
    then). It is never a change of the variant: a row with only a token is unchanged."""

    widget = forms.HiddenInput

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, initial=uuid.uuid4, **kwargs)

    def has_changed(self, initial: Any, data: Any) -> bool:
        return False


class VariantForm(forms.ModelForm[Variant]):
    """A variant's own fields, plus a stock change recorded in the ledger.

    Staff never type on_hand itself: a number read before a concurrent checkout changed
    it would overwrite the checkout's work. They enter a change (+12 received, -1
    broken), which is checked and applied under the variant's row lock. The admin
    validates and saves in one transaction, so the lock taken in `clean` is held until
    the change is saved.

    A relative change has a hazard an absolute number does not: the same form sent
    twice (a double-click on Save, a browser resubmit) would record it twice. The page
    carries a one-time token (`stock_token`) that the movement stores; a form whose
    token already recorded its change is refused with a form error, nothing changed.
    """

    stock_change = forms.IntegerField(
        required=False,
        min_value=-1_000_000,
        max_value=1_000_000,
        help_text="Units to add (e.g. 12) or remove (e.g. -3). Leave empty for no change.",
    )
    stock_reason = forms.ChoiceField(
        required=False,
        initial=Reason.RESTOCK,
        choices=[(r.value, r.label) for r in Reason if r in STAFF_REASONS],
    )
    stock_note = forms.CharField(required=False, max_length=500)
    stock_token = FormTokenField()
    # Optional in the form: a page rendered before the field existed (or a script that
    # posts the form) keeps the variant's threshold (clean_low_stock_threshold).
    low_stock_threshold = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=1_000_000,
        help_text=Variant._meta.get_field("low_stock_threshold").help_text,
    )

    class Meta:
        model = Variant
        fields = [
            "product",
            "sku",
            "label",
            "position",
            "price",
            "currency",
            "active",
            "low_stock_threshold",
        ]

    def clean_low_stock_threshold(self) -> int:
        value = self.cleaned_data.get("low_stock_threshold")
        if value is None:
            return int(self.instance.low_stock_threshold)
        return int(value)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        delta = cleaned.get("stock_change")
        if not delta:
            return cleaned
        if self.instance.pk is None:
            current = Variant(sku=cleaned.get("sku") or "", on_hand=0, reserved=0)
        else:
            # Already locked (in pk order) by the product's inline formset, or locked
            # here for a single variant; either way read now, under the lock.
            current = variants_lock([self.instance.pk])[self.instance.pk]
        token = cleaned.get("stock_token")
        if token is None:
            # Only a form rendered before the token existed, or not by the admin at all.
            self.add_error(
                "stock_change", "This page is out of date: reload it and enter the change again."
            )
            return cleaned
        try:
            stock_change_check(
                current, delta, cleaned.get("stock_reason") or Reason.RESTOCK, form_token=token
            )
        except StockChangeRefused as exc:
            self.add_error("stock_change", exc.message)
        return cleaned

    def stock_change_apply(self, staff_user: Any) -> None:
        """Records the cleaned stock change on the saved variant (locked again: a no-op
        inside the transaction that already holds the lock)."""
        delta = self.cleaned_data.get("stock_change")
        if not delta:
            return
        variant = variants_lock([self.instance.pk])[self.instance.pk]
        stock_change(
            variant,
            delta=delta,
            reason=self.cleaned_data.get("stock_reason") or Reason.RESTOCK,
            staff_user=staff_user,
            note=self.cleaned_data.get("stock_note") or "",
            form_token=self.cleaned_data.get("stock_token"),
        )


class VariantInlineFormSet(BaseInlineFormSet[Variant, Product, VariantForm]):
    def full_clean(self) -> None:
        # Saving the inline updates several variant rows. Lock them all first, in pk
        # order, as checkout does, so that this save and a multi-line checkout can
        # never wait on each other in opposite orders (a deadlock).
        if self.is_bound and self.instance.pk is not None:
            variants_lock(
                Variant.objects.filter(product=self.instance).values_list("pk", flat=True)
            )
        super().full_clean()


class StockFieldsMixin:
    @admin.display(description="on hand")
    def on_hand_display(self, variant: Variant) -> int:
        return variant.on_hand

    @admin.display(description="available")
    def available_display(self, variant: Variant) -> int:
        return variant.available

    @admin.display(description="price", ordering="price")
    def price_display(self, variant: Variant) -> str:
        if variant.price is None:
            return "-"
        return format_amount(variant.price, variant.currency)


class VariantInline(StockFieldsMixin, admin.TabularInline[Variant, Product]):
    model = Variant
    form = VariantForm
    formset = VariantInlineFormSet  # type: ignore[assignment]
    extra = 0
    fields = [
        "position",
        "sku",
        "label",
        "price",
        "currency",
        "price_display",
        "active",
        "on_hand_display",
        "reserved",
        "available_display",
        "stock_change",
        "stock_reason",
        "stock_note",
        "stock_token",
    ]
    readonly_fields = ["price_display", "on_hand_display", "reserved", "available_display"]
    ordering = ["position", "pk"]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin[Product]):
    list_display = ["name", "slug", "category", "active", "featured", "variant_count", "updated_at"]
    list_filter = ["active", "featured", "category"]
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

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        super().save_formset(request, form, formset, change)
        if isinstance(formset, VariantInlineFormSet):
            saved = [
                f
                for f in formset.forms
                if f.instance.pk is not None and f not in formset.deleted_forms
            ]
            for variant_form in sorted(saved, key=lambda f: f.instance.pk):
                variant_form.stock_change_apply(request.user)


class LowStockFilter(admin.SimpleListFilter):
    """The variants the front page lists as low on stock (catalog.selectors)."""

    title = "stock"
    parameter_name = "low_stock"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "At or below the low stock threshold")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Variant]) -> QuerySet[Variant]:
        if self.value() == "yes":
            return queryset.filter(pk__in=variants_low_on_stock().values("pk"))
        return queryset


@admin.register(Variant)
class VariantAdmin(StockFieldsMixin, admin.ModelAdmin[Variant]):
    form = VariantForm
    list_display = [
        "sku",
        "product",
        "label",
        "position",
        "price_display",
        "on_hand",
        "reserved",
        "available_display",
        "active",
    ]
    list_filter = [LowStockFilter, "active", "currency", "product__category"]
    list_select_related = ["product"]
    search_fields = ["sku", "product__name", "label"]
    autocomplete_fields = ["product"]
    readonly_fields = [
        "price_display",
        "on_hand_display",
        "reserved",
        "available_display",
        "ledger_link",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["product", "sku", "label", "position", "active"]}),
        ("Price", {"fields": ["price", "currency", "price_display"]}),
        (
            "Stock",
            {
                "fields": [
                    ("on_hand_display", "reserved", "available_display"),
                    "low_stock_threshold",
                    "stock_change",
                    "stock_reason",
                    "stock_note",
                    "stock_token",
                    "ledger_link",
                ],
                "description": "On hand changes only through a recorded stock change;"
                " reserved units belong to pending orders.",
            },
        ),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(description="stock ledger")
    def ledger_link(self, variant: Variant) -> str:
        if variant.pk is None:
            return "-"
        url = reverse("admin:catalog_stockmovement_changelist")
        return format_html('<a href="{}?variant__id__exact={}">Movements</a>', url, variant.pk)

    def save_model(self, request: HttpRequest, obj: Variant, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        form.stock_change_apply(request.user)


@admin.register(StockMovement)
class StockMovementAdmin(admin.ModelAdmin[StockMovement]):
    """The stock ledger, read-only: rows are added by sales and staff stock changes."""

    list_display = [
        "created_at",
        "variant",
        "delta",
        "on_hand_after",
        "reason",
        "order",
        "staff_user",
        "note",
    ]
    list_filter = ["reason", "created_at"]
    list_select_related = ["variant__product", "order", "staff_user"]
    search_fields = ["variant__sku", "note", "order__id"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
