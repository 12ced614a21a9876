"""Orders of a customer built straight with the ORM (what checkout and the payment
engine leave behind), for the tests of /api/v1/me, its order history and account
deletion. Needs the `goods` fixture (tests/orders/conftest.py: TEE-M at 20.00 USD)."""

import uuid
from datetime import timedelta

from django.contrib.auth.models import User
from django.utils import timezone

from djangomart.catalog.models import Variant
from djangomart.orders.models import Order, OrderLine
from djangomart.payments.models import Payment, Refund

SHIPPING = {
    "name": "Ada Lovelace",
    "line1": "12 St James's Square",
    "line2": "",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "region": "",
    "country": "GB",
    "phone": "+44 20 7946 0000",
}


def order_make(
    customer: User | None,
    *,
    email: str = "ada@example.com",
    quantity: int = 2,
    created_ago: timedelta = timedelta(0),
    shipping: dict[str, str] | None = None,
) -> Order:
    variant = Variant.objects.select_related("product").get(sku="TEE-M")
    total = variant.price * quantity
    order = Order.objects.create(
        email=email,
        customer=customer,
        currency=variant.currency,
        subtotal=total,
        total=total,
        expires_at=timezone.now() + timedelta(hours=1),
        success_url="http://localhost:3000/checkout/success",
        cancel_url="http://localhost:3000/checkout/cancel",
        shipping_address=shipping,
    )
    OrderLine.objects.create(
        order=order,
        variant=variant,
        sku=variant.sku,
        name=variant.product.name,
        unit_price=variant.price,
        quantity=quantity,
        line_total=total,
    )
    if created_ago:
        # created_at is auto_now_add: an older order is dated afterwards.
        Order.objects.filter(pk=order.pk).update(created_at=timezone.now() - created_ago)
        order.refresh_from_db()
    return order


def order_paid_and_refunded(order: Order, refunded: int = 1000) -> Refund:
    """The money facts of a paid order with one succeeded refund, as the payment engine
    records them (a Payment and a Refund row, and the order's derived facts)."""
    payment = Payment.objects.create(
        order=order,
        stripe_payment_intent_id=f"pi_test_{uuid.uuid4().hex[:24]}",
        currency=order.currency,
        amount_received=order.total,
        succeeded=True,
    )
    refund = Refund.objects.create(
        order=order,
        payment=payment,
        stripe_refund_id=f"re_test_{uuid.uuid4().hex[:24]}",
        stripe_payment_intent_id=payment.stripe_payment_intent_id,
        amount=refunded,
        currency=order.currency,
        status=Refund.Status.SUCCEEDED,
        origin=Refund.Origin.STAFF,
    )
    Order.objects.filter(pk=order.pk).update(
        status=Order.Status.PAID,
        payment_status=Order.PaymentStatus.PARTIALLY_REFUNDED,
        amount_paid=order.total,
        amount_refunded=refunded,
    )
    order.refresh_from_db()
    return refund
