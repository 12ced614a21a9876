"""What staff read to ship: the orders waiting for it and their pick lists."""

from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from django.db.models import Exists, F, OuterRef, Prefetch, QuerySet, prefetch_related_objects

from djangomart.fulfillment.models import Shipment, ShipmentLine
from djangomart.orders.models import Order, OrderLine


def orders_to_ship() -> QuerySet[Order]:
    """Orders waiting to be shipped, oldest first: paid (a fulfilled order is done), not
    needing attention, not refunded in full, not under an open dispute and with no
    dispute lost (shipping those is refused unless a human overrides it:
    services.shipment_refusals), with units still to ship."""
    left_to_ship = OrderLine.objects.filter(
        order_id=OuterRef("pk"), quantity__gt=F("quantity_shipped") + F("quantity_withdrawn")
    )
    return (
        Order.objects.filter(
            Exists(left_to_ship),
            status=Order.Status.PAID,
            needs_attention=False,
            disputed=False,
            dispute_lost=False,
        )
        .exclude(payment_status=Order.PaymentStatus.REFUNDED)
        .order_by("created_at", "pk")
    )


@dataclass(frozen=True)
class PickLine:
    sku: str
    name: str
    quantity: int  # left to ship


def pick_list(order: Order) -> list[PickLine]:
    """The order's lines with units left to ship, as a picker reads them (from
    `order.lines`, prefetched by pick_lists for a page of orders)."""
    return [
        PickLine(line.sku, line.name, line.quantity_to_ship)
        for line in sorted(order.lines.all(), key=lambda ln: ln.pk)
        if line.quantity_to_ship > 0
    ]


def pick_lists(orders: Iterable[Order]) -> dict[UUID, list[PickLine]]:
    """Per order, its pick list: one query for all their lines."""
    ids = [order.pk for order in orders]
    lines: dict[UUID, list[PickLine]] = {pk: [] for pk in ids}
    rows = OrderLine.objects.filter(
        order_id__in=ids, quantity__gt=F("quantity_shipped") + F("quantity_withdrawn")
    ).order_by("order_id", "pk")
    for line in rows:
        lines[line.order_id].append(PickLine(line.sku, line.name, line.quantity_to_ship))
    return lines


def pick_list_aggregate(order_ids: Iterable[UUID]) -> list[PickLine]:
    """One pick list for several orders: per SKU, the units left to ship across them,
    by SKU. One query. (The name is the latest order line's, as sold.)"""
    totals: dict[str, PickLine] = {}
    rows = OrderLine.objects.filter(
        order_id__in=list(order_ids), quantity__gt=F("quantity_shipped") + F("quantity_withdrawn")
    ).order_by("pk")
    for line in rows:
        known = totals.get(line.sku)
        quantity = line.quantity_to_ship + (known.quantity if known else 0)
        totals[line.sku] = PickLine(line.sku, line.name, quantity)
    return [totals[sku] for sku in sorted(totals)]


def _lines() -> Prefetch[str]:
    return Prefetch(
        "lines", queryset=ShipmentLine.objects.select_related("order_line").order_by("pk")
    )


def shipment_with_lines(shipment: Shipment) -> Shipment:
    """`shipment` with its lines and their order lines (one query)."""
    prefetch_related_objects([shipment], _lines())
    return shipment


def shipments_of(order_id: UUID) -> list[Shipment]:
    """The order's shipments, oldest first, with their lines and staff users (three
    queries whatever their number)."""
    return list(
        Shipment.objects.filter(order_id=order_id)
        .select_related("staff_user")
        .prefetch_related(_lines())
        .order_by("created_at", "pk")
    )
