"""Orders, their lines (a snapshot of what was sold) and their timeline."""

import secrets
import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from djangomart.money import CURRENCY_PATTERN


def new_access_token() -> str:
    return secrets.token_urlsafe(32)


class OrderStatus(models.TextChoices):
    PENDING = "pending"
    PAID = "paid"
    FULFILLED = "fulfilled"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELED = "canceled"


class PaymentStatus(models.TextChoices):
    UNPAID = "unpaid"
    PROCESSING = "processing"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


class FulfillmentStatus(models.TextChoices):
    UNFULFILLED = "unfulfilled"
    PARTIAL = "partial"
    FULFILLED = "fulfilled"


class Order(models.Model):
    Status = OrderStatus
    PaymentStatus = PaymentStatus
    FulfillmentStatus = FulfillmentStatus

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField()
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="orders",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    payment_status = models.CharField(
        max_length=24, choices=PaymentStatus.choices, default=PaymentStatus.UNPAID
    )
    currency = models.CharField(max_length=3)
    subtotal = models.BigIntegerField()
    total = models.BigIntegerField()
    # Money facts, derived from the Payment rows (payments app); never set by hand.
    amount_paid = models.BigIntegerField(default=0)
    amount_refunded = models.BigIntegerField(default=0)
    # Derived from the Dispute rows: a dispute is open; one was lost, and how much the
    # shop lost that way (not a refund: the bank took it back).
    disputed = models.BooleanField(default=False)
    dispute_lost = models.BooleanField(default=False)
    amount_lost_to_disputes = models.BigIntegerField(default=0)
    # Derived from the lines' quantity_shipped by fulfillment.services (under the order's
    # lock), stored so that lists and the outbox's payloads need no extra query.
    fulfillment_status = models.CharField(
        max_length=16, choices=FulfillmentStatus.choices, default=FulfillmentStatus.UNFULFILLED
    )
    needs_attention = models.BooleanField(default=False)
    attention_reasons = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    access_token = models.CharField(max_length=64, default=new_access_token, editable=False)
    stripe_checkout_session_id = models.CharField(
        max_length=255, unique=True, null=True, blank=True
    )
    stripe_payment_intent_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    # Sent to Stripe as the session's expires_at; stored so that every retry of the
    # session creation sends identical parameters.
    expires_at = models.DateTimeField()
    checkout_url = models.URLField(max_length=2000, blank=True)
    success_url = models.URLField(max_length=2000)
    cancel_url = models.URLField(max_length=2000)
    # The client's Idempotency-Key for POST /checkout, with a hash of its body.
    idempotency_key = models.CharField(max_length=255, unique=True, null=True, blank=True)
    request_fingerprint = models.CharField(max_length=64, blank=True)
    # Where to ship, copied at checkout (djangomart.accounts.addresses: name, line1,
    # line2, city, postal_code, region, country, phone): a snapshot, so that later edits
    # or the deletion of the customer's saved address never change it. Null: none given.
    shipping_address = models.JSONField(null=True, blank=True)
    stock_released = models.BooleanField(default=False)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    # Reconciliation (payments.reconcile): when to look at this pending order next, and
    # how many times it was looked at (the backoff). Null: at expires_at + grace.
    reconcile_next_at = models.DateTimeField(null=True, blank=True)
    reconcile_attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["needs_attention"],
                name="order_needs_attention",
                condition=Q(needs_attention=True),
            ),
            models.Index(fields=["status", "expires_at"], name="order_status_expires"),
            models.Index(
                fields=["reconcile_next_at"],
                name="order_reconcile_next",
                condition=Q(status="pending"),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=OrderStatus.values), name="order_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(payment_status__in=PaymentStatus.values),
                name="order_payment_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=CURRENCY_PATTERN), name="order_currency_iso_lower"
            ),
            models.CheckConstraint(
                condition=Q(fulfillment_status__in=FulfillmentStatus.values),
                name="order_fulfillment_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(
                    subtotal__gte=0,
                    total__gte=0,
                    amount_paid__gte=0,
                    amount_refunded__gte=0,
                    amount_lost_to_disputes__gte=0,
                ),
                name="order_amounts_gte_0",
            ),
        ]

    def __str__(self) -> str:
        return f"Order {self.id} ({self.status})"

    def is_pending(self) -> bool:
        return self.status == self.Status.PENDING


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    variant = models.ForeignKey("catalog.Variant", on_delete=models.PROTECT, related_name="+")
    # A snapshot: later catalog edits never change what was sold.
    sku = models.CharField(max_length=64)
    name = models.CharField(max_length=400)
    unit_price = models.BigIntegerField()
    quantity = models.PositiveIntegerField()
    line_total = models.BigIntegerField()
    # Kept under the order's lock, the constraints being the database's last word:
    # units in shipments (fulfillment.ShipmentLine); units put back on the shelf by a
    # return (orders.stock.stock_return: `return` movements in the stock ledger); and
    # of those, units that had never shipped, which therefore will not ship any more
    # (withdrawn: a refund before shipping).
    quantity_shipped = models.PositiveIntegerField(default=0)
    quantity_returned = models.PositiveIntegerField(default=0)
    quantity_withdrawn = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=1), name="orderline_quantity_gte_1"),
            models.CheckConstraint(
                condition=Q(line_total=models.F("unit_price") * models.F("quantity")),
                name="orderline_total_is_price_times_quantity",
            ),
            models.UniqueConstraint(fields=["order", "variant"], name="orderline_unique_variant"),
            models.CheckConstraint(
                condition=Q(
                    quantity_shipped__lte=models.F("quantity") - models.F("quantity_withdrawn"),
                    quantity_returned__lte=models.F("quantity"),
                    quantity_withdrawn__lte=models.F("quantity_returned"),
                ),
                name="orderline_fulfillment_quantities",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"

    @property
    def quantity_to_ship(self) -> int:
        """Units still to ship: sold, minus shipped, minus withdrawn."""
        return self.quantity - self.quantity_shipped - self.quantity_withdrawn

    @property
    def quantity_returnable(self) -> int:
        """Units a return may still put back on the shelf: sold, minus returned."""
        return self.quantity - self.quantity_returned


class OrderEvent(models.Model):
    """One line of an order's timeline: what happened, and which Stripe event (or staff
    member) caused it."""

    class Kind(models.TextChoices):
        CREATED = "created"
        CHECKOUT_SESSION_CREATED = "checkout_session_created"
        TRANSITION = "transition"
        TRANSITION_REFUSED = "transition_refused"
        PAYMENT_ATTEMPT_FAILED = "payment_attempt_failed"
        PAYMENT_PROCESSING = "payment_processing"
        PAYMENT_RECORDED = "payment_recorded"
        REFUND = "refund"
        DISPUTE = "dispute"
        LATE_PAYMENT = "late_payment"
        FLAGGED = "flagged"
        NOTE = "note"
        SHIPMENT = "shipment"
        STOCK_RETURN = "stock_return"

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    stripe_event_id = models.CharField(max_length=255, blank=True, db_index=True)
    # The staff member whose admin action caused the entry (cancel, accept as paid,
    # attention resolved); kept as history when the account is deleted.
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.kind} {self.from_status}->{self.to_status}".strip()


class OrderNeedingAttention(Order):
    """The admin's list of orders flagged for a human (a proxy: same table)."""

    class Meta:
        proxy = True
        verbose_name = "order needing attention"
        verbose_name_plural = "orders needing attention"
