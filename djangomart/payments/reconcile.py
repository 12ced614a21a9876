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

from django.db import transaction
from django.utils import timezone

from djangomart.orders import transitions
from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order
from djangomart.payments import checkout
from djangomart.payments.gateway import GatewayError

logger = logging.getLogger(__name__)

# Stripe expires the session at expires_at and tells us within seconds; this is how
# long we wait for that before asking.
GRACE = timedelta(minutes=10)
BATCH = 200


def orders_reconcile_stale() -> int:
    """Brings pending orders past expires_at + GRACE in line with Stripe. Returns how many
    it looked at. Stripe is called with no lock held."""
    cutoff = timezone.now() - GRACE
    ids = list(
        Order.objects.filter(status=Order.Status.PENDING, expires_at__lt=cutoff)
        .order_by("expires_at")
        .values_list("pk", "stripe_checkout_session_id")[:BATCH]
    )
    for order_id, session_id in ids:
        if session_id is None:
            _expire_without_session(order_id)
            continue
        try:
            checkout.order_sync(order_id=order_id)
        except (checkout.PaymentProviderError, GatewayError):
            logger.warning("reconcile: Stripe unavailable", extra={"order_id": str(order_id)})
    return len(ids)


@transaction.atomic
def _expire_without_session(order_id: UUID) -> None:
    order = orders_lock([order_id])[order_id]
    if order.is_pending() and order.stripe_checkout_session_id is None:
        transitions.apply(
            order, Order.Status.EXPIRED, message="Expired without a Checkout Session ever created."
        )
