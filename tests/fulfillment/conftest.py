"""Paid orders built with the ORM plus the real lifecycle (transitions.apply under the
order's lock: the stock sold, order.paid in the outbox), and staff who may ship."""

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import transaction
from django.test import Client
from django.utils import timezone

from djangomart.accounts.services import staff_token_create
from djangomart.catalog.models import Variant
from djangomart.catalog.services import stock_reserve, variants_lock
from djangomart.orders import transitions
from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order, OrderLine
from tests.conftest import make_product
from tests.payments.conftest import sandbox, stripe_settings

__all__ = ["sandbox", "stripe_settings"]

KEY = "shipment-test-key-0001"


def paid_order(lines: dict[str, int] | None = None, *, stock: int = 10, **money: Any) -> Order:
    """A paid order of `lines` (SKU -> quantity, 10.00 USD a unit; products made as
    needed with `stock` on hand). `money` overrides the money facts (payment_status,
    disputed...), as payments.facts would have set them."""
    lines = lines or {"MUG-RED": 3, "MUG-BLUE": 1}
    variants = []
    for sku in lines:
        if not Variant.objects.filter(sku=sku).exists():
            make_product(sku.lower(), variants=[(sku, 1000, stock)])
        variants.append(Variant.objects.select_related("product").get(sku=sku))
    total = sum(1000 * quantity for quantity in lines.values())
    order = Order.objects.create(
        email="buyer@example.com",
        currency="usd",
        subtotal=total,
        total=total,
        expires_at=timezone.now() + timedelta(hours=1),
        success_url="http://localhost:3000/ok",
        cancel_url="http://localhost:3000/cancel",
    )
    for variant, quantity in zip(variants, lines.values(), strict=True):
        OrderLine.objects.create(
            order=order,
            variant=variant,
            sku=variant.sku,
            name=f"{variant.product.name} {variant.label}".strip(),
            unit_price=1000,
            quantity=quantity,
            line_total=1000 * quantity,
        )
    with transaction.atomic():
        locked = orders_lock([order.pk])[order.pk]
        variants_lock([v.pk for v in variants])
        stock_reserve({v.pk: q for v, q in zip(variants, lines.values(), strict=True)})
        assert transitions.apply(locked, Order.Status.PAID, message="paid (test)")
    Order.objects.filter(pk=order.pk).update(
        **{"payment_status": "paid", "amount_paid": total, **money}
    )
    order.refresh_from_db()
    return order


def staff_member(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, f"{username}@example.com", "pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def shipper(db: None) -> User:
    return staff_member("sam", "add_shipment")


@pytest.fixture
def token(shipper: User) -> str:
    return staff_token_create(shipper, "tests")[0]


def bearer(token: str) -> dict[str, Any]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def shipments_url(order_id: Any) -> str:
    return f"/api/v1/staff/orders/{order_id}/shipments"


def ship_post(
    client: Client, order_id: Any, body: Any, *, key: str | None = KEY, **headers: Any
) -> Any:
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return client.post(shipments_url(order_id), body, content_type="application/json", **headers)


def line_id(order: Order, sku: str) -> int:
    return order.lines.get(sku=sku).pk
