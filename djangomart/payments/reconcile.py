"""Reconciliation: pending orders whose Checkout Session should have ended a while ago.

The webhook that would have ended them never came (an outage, a misconfigured endpoint),
or the web process died between committing the order and creating its session. Either
way their stock stays reserved until something looks: this job asks Stripe and applies
the session with the same function as the webhook, or expires an order that never got
a session.
"""

import logging
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from djangomart.core.errors import DomainError
from djangomart.orders import transitions
from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order
from djangomart.payments import checkout
from djangomart.payments.gateway import GatewayError

logger = logging.getLogger(__name__)

# Stripe expires the session at expires_at and tells us within seconds; this is how
# long we wait for that before asking.
GRACE = timedelta(minutes=10)


# Each pending order waits longer between checks, up to MAX_BACKOFF, so that orders that
# never settle cannot take every run's batch from newer ones.
BACKOFF = timedelta(minutes=5)
MAX_BACKOFF = timedelta(hours=6)


def orders_reconcile_stale() -> int:
    """Brings overdue pending orders in line with Stripe, the most overdue first: each
    pending order has its own next check (reconcile_next_at, or expires_at + GRACE before
    its first check), pushed back with backoff after each look, so every overdue order
    is eventually looked at. Returns how many it looked at. Stripe is called with no
    lock held."""
    now = timezone.now()
    due = Coalesce("reconcile_next_at", F("expires_at") + GRACE)
    ids = list(
        Order.objects.filter(status=Order.Status.PENDING)
        .filter(
            Q(reconcile_next_at__lte=now)
            | Q(reconcile_next_at__isnull=True, expires_at__lt=now - GRACE)
        )
        .order_by(due, "pk")
        .values_list("pk", "stripe_checkout_session_id", "reconcile_attempts")[
            : settings.RECONCILE_BATCH_SIZE
        ]
    )
    for order_id, session_id, attempts in ids:
        # Pushed back first: whatever happens below, the next run looks at others.
        wait = min(BACKOFF * 2 ** min(attempts, 20), MAX_BACKOFF)
        Order.objects.filter(pk=order_id).update(
            reconcile_next_at=now + wait, reconcile_attempts=attempts + 1
        )
        if session_id is None:
            _expire_without_session(order_id)
            continue
        try:
            checkout.order_sync(order_id=order_id)
        except (DomainError, GatewayError):
            logger.warning("reconcile: Stripe unavailable", extra={"order_id": str(order_id)})
    return len(ids)


@transaction.atomic
def _expire_without_session(order_id: UUID) -> None:
    order = orders_lock([order_id])[order_id]
    if order.is_pending() and order.stripe_checkout_session_id is None:
        transitions.apply(
            order, Order.Status.EXPIRED, message="Expired without a Checkout Session ever created."
        )
