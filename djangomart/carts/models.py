"""Carts: a guest's (held by its token) or a customer's (docs/carts.md)."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class CartStatus(models.TextChoices):
    OPEN = "open", "open"
    # A guest cart whose lines went into the customer's cart at login.
    MERGED = "merged", "merged"
    # Its order was paid (decided when the cart is next touched), or it was closed otherwise.
    CLOSED = "closed", "closed"


class Cart(models.Model):
    """A guest cart has a token (only its SHA-256 is stored) and no customer; a customer
    cart has a customer and no token.

    `revision` counts line changes: the checkout of one revision is one order (the payment
    engine's idempotency key is derived from the cart and its checkout attempt), and the
    order is the cart's only while it was made from the cart's current revision."""

    Status = CartStatus

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="carts",
    )
    token_hash = models.CharField(max_length=64, null=True, blank=True, unique=True, editable=False)
    status = models.CharField(max_length=8, choices=CartStatus.choices, default=CartStatus.OPEN)
    revision = models.PositiveIntegerField(default=0, help_text="Bumped by every line change.")
    # The order of the cart's latest checkout, and the revision it was made from.
    order = models.ForeignKey(
        "orders.Order", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    order_revision = models.PositiveIntegerField(null=True, blank=True)
    # The current checkout attempt: its number (part of the engine's idempotency key) and
    # the request it was started with, replayed by a repeat so that the engine sees the
    # same request (same fingerprint) and answers with the same order.
    checkout_seq = models.PositiveIntegerField(default=0)
    checkout_request = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Last activity (creation, line changes, checkout, merge): what the idle cleanup reads.
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "pk"]
        indexes = [models.Index(fields=["updated_at"], name="cart_updated_at")]
        constraints = [
            models.UniqueConstraint(
                fields=["customer"],
                condition=Q(status="open", customer__isnull=False),
                name="cart_one_open_per_customer",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["open", "merged", "closed"]), name="cart_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(customer__isnull=True, token_hash__isnull=False)
                | Q(customer__isnull=False, token_hash__isnull=True),
                name="cart_guest_token_xor_customer",
            ),
        ]

    def __str__(self) -> str:
        return f"cart {self.id} ({self.status})"

    def is_open(self) -> bool:
        return self.status == CartStatus.OPEN


class CartLine(models.Model):
    cart = models.ForeignKey(Cart, on_delete=models.CASCADE, related_name="lines")
    variant = models.ForeignKey(
        "catalog.Variant", on_delete=models.CASCADE, related_name="cart_lines"
    )
    quantity = models.PositiveIntegerField()
    # The unit price when the line was added or its quantity last set: a different
    # catalog price now is the line's `price_changed` problem.
    unit_price = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["cart", "variant"], name="cartline_one_per_variant"),
            models.CheckConstraint(
                condition=Q(quantity__gte=1, quantity__lte=100), name="cartline_quantity_1_100"
            ),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="cartline_price_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.variant_id}"
