"""A per-order limit for the sync endpoint, kept in the database so that it holds across
every web process: one conditional UPDATE, no cache server needed."""

from datetime import timedelta
from uuid import UUID

from django.db.models import Q
from django.utils import timezone

from djangomart.core.errors import DomainError
from djangomart.orders.models import Order

SYNC_INTERVAL = timedelta(seconds=1)


class RateLimited(DomainError):
    status = 429
    code = "rate_limited"
    default_message = "Too many requests for this order; retry shortly."

    def as_response(self):  # type: ignore[no-untyped-def]
        response = super().as_response()
        response["Retry-After"] = "1"
        return response


def sync_allowed(*, order_id: UUID) -> None:
    now = timezone.now()
    updated = Order.objects.filter(
        Q(last_synced_at__isnull=True) | Q(last_synced_at__lte=now - SYNC_INTERVAL), pk=order_id
    ).update(last_synced_at=now)
    if not updated:
        raise RateLimited()
