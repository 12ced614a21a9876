"""Catalog: categories, products, their sellable variants (SKU, price, stock) and the
stock ledger."""

from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F, Q

from djangomart.money import CURRENCY_PATTERN


class Category(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=120, unique=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"
        constraints = [
            models.CheckConstraint(
                condition=~Q(parent=models.F("pk")), name="category_not_own_parent"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="products")
    active = models.BooleanField(default=True)
    featured = models.BooleanField(default=False, help_text="Shown on the storefront's front page.")
    image_urls = ArrayField(models.URLField(max_length=500), default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["category", "active"], name="product_category_active")]

    def __str__(self) -> str:
        return self.name


class Variant(models.Model):
    """What is actually sold: one SKU with its own price and stock.

    Stock is two numbers: `on_hand` (physical units, what staff count) and `reserved`
    (units held by pending orders). `available = on_hand - reserved` is what can be sold.
    Both columns are written only by relative updates under the variant's row lock
    (catalog.services); `save()` never writes them back on an existing row, so a form
    that read them before a checkout changed them cannot overwrite the checkout's work.
    """

    # Columns that only catalog.services changes, with relative updates under the lock.
    STOCK_FIELDS = frozenset({"on_hand", "reserved"})

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="variants")
    sku = models.CharField("SKU", max_length=64, unique=True)
    label = models.CharField(
        "option label", max_length=120, blank=True, help_text='e.g. "Size M / Blue"'
    )
    position = models.PositiveSmallIntegerField(
        default=0, help_text="Order of the variant on its product (smallest first)."
    )
    # Integer minor units (cents) and a lowercase ISO-4217 code, as Stripe uses them.
    price = models.BigIntegerField(help_text="In the currency's minor unit (cents for USD).")
    currency = models.CharField(max_length=3, default="usd")
    on_hand = models.IntegerField("on hand", default=0, help_text="Physical units in stock.")
    reserved = models.IntegerField(default=0, help_text="Units held by pending orders.")
    low_stock_threshold = models.PositiveIntegerField(
        "low stock threshold",
        default=5,
        help_text="The admin's front page lists the variant once its available units "
        "(on hand minus reserved) are at or below this; 0 lists it only when sold out.",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["product_id", "position", "pk"]
        constraints = [
            # The database, not the application, guarantees that stock never goes
            # negative and that no more is reserved than is on the shelf: two concurrent
            # sales of the last unit cannot both commit.
            models.CheckConstraint(condition=Q(on_hand__gte=0), name="variant_on_hand_gte_0"),
            models.CheckConstraint(condition=Q(reserved__gte=0), name="variant_reserved_gte_0"),
            models.CheckConstraint(
                condition=Q(on_hand__gte=F("reserved")), name="variant_available_gte_0"
            ),
            models.CheckConstraint(condition=Q(price__gte=0), name="variant_price_gte_0"),
            models.CheckConstraint(
                condition=Q(currency__regex=CURRENCY_PATTERN), name="variant_currency_iso_lower"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} ({self.product.name} {self.label})".strip()

    def save(self, *args: Any, **kwargs: Any) -> None:
        # An existing row's stock columns are never written from a (possibly stale)
        # instance: they change only through catalog.services, under the row lock.
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key and f.name not in self.STOCK_FIELDS
            ]
        super().save(*args, **kwargs)

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class StockMovement(models.Model):
    """One change of a variant's `on_hand`: the stock ledger. Rows are only ever added;
    the sum of a variant's deltas is its on_hand."""

    class Reason(models.TextChoices):
        SALE = "sale", "sale"
        RESTOCK = "restock", "restock"
        ADJUSTMENT = "adjustment", "adjustment"
        RETURN = "return", "return"

    variant = models.ForeignKey(Variant, on_delete=models.PROTECT, related_name="movements")
    delta = models.IntegerField(help_text="Units added (positive) or removed (negative).")
    on_hand_after = models.IntegerField("on hand after")
    reason = models.CharField(max_length=16, choices=Reason.choices)
    order = models.ForeignKey(
        "orders.Order",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="stock_movements",
    )
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="stock_movements",
    )
    note = models.CharField(max_length=500, blank=True)
    # The one-time token of the admin form that recorded a staff change: the same form
    # sent twice (a double-click on Save, a browser resubmit) must not record it twice.
    # Unique per variant, not alone: the product page's "Add another" rows are copies of
    # one rendered row and so share a token.
    form_token = models.UUIDField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["variant", "created_at"], name="stockmove_variant_time")]
        constraints = [
            models.CheckConstraint(condition=~Q(delta=0), name="stockmove_delta_not_0"),
            models.CheckConstraint(
                condition=Q(reason__in=["sale", "restock", "adjustment", "return"]),
                name="stockmove_reason_valid",
            ),
            # A sale is recorded once per order and variant: paying twice cannot sell twice.
            models.UniqueConstraint(
                fields=["order", "variant"],
                condition=Q(reason="sale"),
                name="stockmove_one_sale_per_order_variant",
            ),
            models.UniqueConstraint(
                fields=["variant", "form_token"], name="stockmove_one_per_form_token"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.delta:+d} {self.reason}"
