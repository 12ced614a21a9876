"""How often the landing-page sync may call Stripe for one order, kept in the database so
that it holds across every web process: one conditional UPDATE, no cache server."""

from datetime import timedelta
from uuid import UUID

from django.db.models import Q
from django.utils import timezone

from djangomart.orders.models import Order

SYNC_INTERVAL = timedelta(seconds=1)


def sync_slot_take(*, order_id: UUID) -> bool:
    """True if this request may call Stripe for the order now (at most once per
    SYNC_INTERVAL); False means another request just did."""
    now = timezone.now()
    return bool(
        Order.objects.filter(
            Q(last_synced_at__isnull=True) | Q(last_synced_at__lte=now - SYNC_INTERVAL), pk=order_id
        ).update(last_synced_at=now)
    )
