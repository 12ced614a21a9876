"""Orders built straight with the ORM, and Stripe objects for them, for tests that
drive the inbox with hand-built events rather than through the sandbox.

The demo catalog must be loaded (the `demo_catalog` fixture)."""

import uuid
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from djangomart.catalog.models import Variant
from djangomart.catalog.services import stock_reserve, variants_lock
from djangomart.orders.models import Order, OrderEvent, OrderLine

DEMO_SKU = "CLASSIC-TEE-M"  # 20.00 USD in the demo catalog


def new_session_id() -> str:
    return f"cs_test_{uuid.uuid4().hex}"


def new_intent_id() -> str:
    return f"pi_test_{uuid.uuid4().hex[:24]}"


def order_build(
    *,
    sku: str = DEMO_SKU,
    quantity: int = 2,
    session_id: str | None = None,
    with_session: bool = True,
    intent_id: str | None = None,
) -> Order:
    """A pending order for `quantity` units of `sku`, with its stock reserved, as
    checkout leaves it once its Checkout Session exists (unless `with_session` is
    false). With `intent_id`, its own session already named that PaymentIntent (so
    events about it are the order's own)."""
    variant = Variant.objects.select_related("product").get(sku=sku)
    total = variant.price * quantity
    order = Order.objects.create(
        email="buyer@example.com",
        currency=variant.currency,
        subtotal=total,
        total=total,
        expires_at=timezone.now() + timedelta(hours=1),
        success_url="http://localhost:3000/checkout/success",
        cancel_url="http://localhost:3000/checkout/cancel",
        stripe_checkout_session_id=(session_id or new_session_id()) if with_session else None,
        stripe_payment_intent_id=intent_id,
    )
    OrderLine.objects.create(
        order=order,
        variant=variant,
        sku=variant.sku,
        name=f"{variant.product.name} {variant.label}".strip(),
        unit_price=variant.price,
        quantity=quantity,
        line_total=total,
    )
    with transaction.atomic():
        variants_lock([variant.pk])
        stock_reserve({variant.pk: quantity})
    OrderEvent.objects.create(order=order, kind=OrderEvent.Kind.CREATED, message="Order created.")
    return order


def charge_object(order: Order, intent_id: str, **overrides: Any) -> dict[str, Any]:
    """A charge as Stripe embeds it in charge.* events."""
    obj: dict[str, Any] = {
        "id": f"ch_test_{uuid.uuid4().hex[:24]}",
        "object": "charge",
        "amount": order.total,
        "amount_captured": order.total,
        "currency": order.currency,
        "metadata": {"order_id": str(order.id)},
        "paid": True,
        "payment_intent": intent_id,
        "status": "succeeded",
    }
    obj.update(overrides)
    return obj


DECLINE = {
    "type": "card_error",
    "code": "card_declined",
    "decline_code": "generic_decline",
    "message": "Your card was declined.",
}


def new_dispute_id() -> str:
    return f"dp_test_{uuid.uuid4().hex[:24]}"


def dispute_object(
    order: Order, intent_id: str, dispute_id: str, status: str = "needs_response", **overrides: Any
) -> dict[str, Any]:
    """A dispute as Stripe embeds it in charge.dispute.* events (an inquiry when its
    status is warning_*), on the whole of the order's charge."""
    obj: dict[str, Any] = {
        "id": dispute_id,
        "object": "dispute",
        "amount": order.total,
        "charge": f"ch_test_{intent_id[8:]}",
        "created": 1_800_000_000,
        "currency": order.currency,
        "evidence_details": {
            "due_by": 1_800_604_800,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": status.startswith("warning_"),
        "livemode": False,
        "metadata": {},
        "payment_intent": intent_id,
        "reason": "fraudulent",
        "status": status,
    }
    obj.update(overrides)
    return obj
