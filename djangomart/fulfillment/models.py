"""Shipments: which units of an order left the warehouse, when, with which carrier and
tracking number, and who sent them. A shipment is a fact: written once by
services.shipment_create, never edited."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from djangomart.orders.models import Order, OrderLine


class Shipment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="shipments")
    carrier = models.CharField(max_length=100)
    tracking_number = models.CharField(max_length=200, blank=True)
    tracking_url = models.URLField(max_length=2000, blank=True)
    shipped_at = models.DateTimeField()
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # A refusal a human chose to override (refunded, disputed), with their reason; empty
    # for an ordinary shipment.
    override = models.JSONField(default=dict, blank=True)
    # The staff API's Idempotency-Key (or the admin form's), scoped per order, and a hash
    # of the request body: a retry gets this shipment back instead of a second one.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001 (unique when set)
    request_fingerprint = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]
        permissions = [
            ("override_shipment", "Can ship an order that is refunded, disputed or lost a dispute"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["order", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="shipment_unique_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        tracking = f" {self.tracking_number}" if self.tracking_number else ""
        return f"{self.carrier}{tracking} ({self.shipped_at:%Y-%m-%d})"


class ShipmentLine(models.Model):
    shipment = models.ForeignKey(Shipment, on_delete=models.CASCADE, related_name="lines")
    order_line = models.ForeignKey(OrderLine, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField()

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="shipmentline_quantity_gte_1"
            ),
            models.UniqueConstraint(
                fields=["shipment", "order_line"], name="shipmentline_unique_line"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.order_line.sku}"


class OrderToShip(Order):
    """The admin's "To ship" list (a proxy: the orders table, selectors.orders_to_ship)."""

    class Meta:
        proxy = True
        verbose_name = "order to ship"
        verbose_name_plural = "orders to ship"
