"""Row locks, always taken in one global order so that no two transactions deadlock:
first one advisory lock, either the Stripe event's claim (payments.inbox) or a
checkout's Idempotency-Key (never both in one transaction), then orders, then
variants; each set in primary-key order; a PaymentIntent's lock (payment_intent_lock)
comes after those or alone, never before an order lock. Variants are locked by the catalog's helper
(also used by the admin's stock changes), so there is one way to lock them."""

from collections.abc import Iterable
from uuid import UUID

from django.db import connection

from djangomart.catalog import services as catalog_services
from djangomart.catalog.models import Variant
from djangomart.orders.models import Order


def idempotency_key_lock(key_hash: str) -> None:
    """Serializes checkouts carrying one stored (scoped, hashed) Idempotency-Key until the
    transaction ends, so that a double-click finds the first click's order instead of
    queueing for its variants and finding them sold. Taken before any row lock. The lock
    number is the hash's first 64 bits (it is already a SHA-256). Inside atomic()."""
    number = int.from_bytes(bytes.fromhex(key_hash[:16]), "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [number])


def payment_intent_lock(intent_id: str) -> None:
    """Serializes "is this PaymentIntent an order's own yet?" until the transaction ends:
    recording it as an order's (payments.facts, under that order's lock, so after it)
    against an event about it that found no order (payments.inbox, holding no order
    lock). Whichever commits first, the other sees it: the recorder's requeue of waiting
    events finds the event, or the event finds the order. Inside atomic()."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                       [f"payment_intent:{intent_id}"])  # fmt: skip


def orders_lock(ids: Iterable[UUID]) -> dict[UUID, Order]:
    """Locks the orders in pk order and returns them freshly read. Inside atomic()."""
    rows = Order.objects.filter(pk__in=list(ids)).order_by("pk").select_for_update(of=("self",))
    return {order.pk: order for order in rows}


def variants_lock(ids: Iterable[int]) -> dict[int, Variant]:
    """Locks the variants in pk order (after any order locks). Inside atomic()."""
    return catalog_services.variants_lock(ids)
