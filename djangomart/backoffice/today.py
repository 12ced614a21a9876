"""What needs a human today, for the admin's index: one panel per kind of work, each
the count and the first few rows, most urgent first, and a link to the full list.

A panel is shown only to staff who may view its model: the index is every staff user's
landing page, and a panel must not show what the list behind it would refuse."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet
from django.urls import reverse

from djangomart.catalog.models import Variant
from djangomart.catalog.selectors import variants_low_on_stock
from djangomart.fulfillment.selectors import orders_to_ship
from djangomart.money import format_amount
from djangomart.orders.models import Order
from djangomart.payments.models import Dispute, StripeEvent

SHOWN = 8  # rows per panel; the link shows the rest


@dataclass(frozen=True)
class Row:
    text: str
    url: str  # the object's admin page


@dataclass(frozen=True)
class Panel:
    title: str
    count: int
    rows: list[Row]
    url: str  # the full list
    empty: str  # what an empty panel says


def _panel(
    title: str, rows: QuerySet[Any], url: str, empty: str, row: Callable[[Any], Row]
) -> Panel:
    shown = [row(obj) for obj in rows[:SHOWN]]
    return Panel(title=title, count=rows.count(), rows=shown, url=url, empty=empty)


def _order_url(order_id: Any) -> str:
    return reverse("admin:orders_order_change", args=[order_id])


def _attention_row(order: Order) -> Row:
    reasons = ", ".join(order.attention_reasons) or "flagged"
    return Row(f"{order.pk} ({order.email}): {reasons}", _order_url(order.pk))


def _event_row(event: StripeEvent) -> Row:
    url = reverse("admin:payments_stripeevent_change", args=[event.pk])
    return Row(f"{event.type} {event.pk}: {event.last_error[:120]}", url)


def _dispute_row(dispute: Dispute) -> Row:
    due = (
        f"evidence due {dispute.evidence_due_by:%Y-%m-%d %H:%M}"
        if dispute.evidence_due_by
        else "no due date"
    )
    amount = format_amount(dispute.amount, dispute.currency)
    text = f"{due}: {amount}, {dispute.reason} (order {dispute.order_id})"
    return Row(text, _order_url(dispute.order_id))


def _to_ship_row(order: Order) -> Row:
    text = f"{order.pk} ({order.email}), ordered {order.created_at:%Y-%m-%d %H:%M}"
    return Row(text, _order_url(order.pk))


def _variant_row(variant: Variant) -> Row:
    url = reverse("admin:catalog_variant_change", args=[variant.pk])
    return Row(
        f"{variant.sku} {variant.product.name} {variant.label}: {variant.available} available"
        f" (threshold {variant.low_stock_threshold})",
        url,
    )


def staff_today(user: User | AnonymousUser) -> list[Panel]:
    panels: list[Panel] = []
    if user.has_perm("orders.view_order"):
        panels.append(
            _panel(
                "Orders needing attention",
                Order.objects.filter(needs_attention=True).order_by("updated_at", "pk"),
                reverse("admin:orders_orderneedingattention_changelist"),
                "No order needs attention.",
                _attention_row,
            )
        )
    if user.has_perm("payments.view_stripeevent"):
        panels.append(
            _panel(
                "Dead Stripe events (replay them once fixed)",
                StripeEvent.objects.filter(status=StripeEvent.Status.DEAD).order_by(
                    "received_at", "pk"
                ),
                reverse("admin:payments_stripeevent_changelist") + "?status__exact=dead",
                "No dead event.",
                _event_row,
            )
        )
    if user.has_perm("payments.view_dispute"):
        panels.append(
            _panel(
                "Open disputes, by evidence due date",
                Dispute.objects.filter(status__in=Dispute.OPEN)
                .select_related("order")
                .order_by("evidence_due_by", "pk"),
                reverse("admin:payments_dispute_changelist"),
                "No open dispute.",
                _dispute_row,
            )
        )
    if user.has_perm("fulfillment.view_ordertoship"):
        panels.append(
            _panel(
                "Orders to ship",
                orders_to_ship(),
                reverse("admin:fulfillment_ordertoship_changelist"),
                "Nothing to ship.",
                _to_ship_row,
            )
        )
    if user.has_perm("catalog.view_variant"):
        panels.append(
            _panel(
                "Variants at or below their low stock threshold",
                variants_low_on_stock(),
                reverse("admin:catalog_variant_changelist") + "?low_stock=yes",
                "No variant is low on stock.",
                _variant_row,
            )
        )
    return panels
