"""Catalog: categories, products and their sellable variants (SKU, price, stock)."""

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

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
    image_urls = ArrayField(models.URLField(max_length=500), default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["category", "active"], name="product_category_active")]

    def __str__(self) -> str:
        return self.name


class Variant(models.Model):
    """What is actually sold: one SKU with its own price and stock."""

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="variants")
    sku = models.CharField("SKU", max_length=64, unique=True)
    label = models.CharField(
        "option label", max_length=120, blank=True, help_text='e.g. "Size M / Blue"'
    )
    # Integer minor units (cents) and a lowercase ISO-4217 code, as Stripe uses them.
    price = models.BigIntegerField(help_text="In the currency's minor unit (cents for USD).")
    currency = models.CharField(max_length=3, default="usd")
    stock_on_hand = models.IntegerField(default=0)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["product_id", "price", "sku"]
        constraints = [
            # The database, not the application, guarantees that stock never goes
            # negative: two concurrent sales of the last unit cannot both commit.
            models.CheckConstraint(
                condition=Q(stock_on_hand__gte=0), name="variant_stock_on_hand_gte_0"
            ),
            models.CheckConstraint(condition=Q(price__gte=0), name="variant_price_gte_0"),
            models.CheckConstraint(
                condition=Q(currency__regex=CURRENCY_PATTERN), name="variant_currency_iso_lower"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} ({self.product.name} {self.label})".strip()
