"""ceb2e11 moved the Stripe-event, outbox and email retention statements to a
MATERIALIZED CTE because `UPDATE ... WHERE id IN (SELECT ... LIMIT n FOR UPDATE SKIP
LOCKED)` is not bounded: PostgreSQL may rescan the subquery once per outer row, each
rescan skips the rows the statement already updated and locks the next n. The fourth
retention target, notify.webhooks.services.webhook_attempts_prune, was left with exactly
that statement: one "batch" of it can erase every old attempt's response body at once,
holding all their locks in one transaction (docs/operations.md: "it holds at most
RETENTION_BATCH_SIZE rows").

The plan that rescans (a Nested Loop Semi Join with the LIMIT subquery as its inner
side) is one the planner is free to choose; the test steers it there with planner
settings only (SET LOCAL, this test's transaction), and shows that the fixed statements
stay bounded under the very same settings while the webhook attempts' one does not."""

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from djangomart.notify.webhooks.models import WebhookAttempt, WebhookDelivery
from djangomart.notify.webhooks.services import webhook_attempts_prune
from djangomart.payments import retention
from tests.notify.webhooks.conftest import endpoint_make, receiver  # noqa: F401
from tests.notify.webhooks.receivers import Receiver
from tests.notify.webhooks.test_deliveries import paid
from tests.payments.test_retention import OLD, _cutoff, _events

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_settings", "demo_catalog")]

ROWS = 30
BATCH = 3

# Planner settings under which the old IN-subquery form is rescanned per outer row.
RESCANNING_PLAN = (
    "enable_hashjoin",
    "enable_mergejoin",
    "enable_material",
    "enable_hashagg",
    "enable_sort",
)

_ATTEMPTS_IN_SUBQUERY = (
    "UPDATE notify_webhooks_webhookattempt SET response_body = ''"
    " WHERE id IN (SELECT id FROM notify_webhooks_webhookattempt"
    "   WHERE started_at < %s AND response_body <> ''"
    "   ORDER BY started_at LIMIT %s FOR UPDATE SKIP LOCKED)"
)


def _planner_steered() -> None:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE notify_webhooks_webhookattempt")
        cursor.execute("ANALYZE payments_stripeevent")
        for name in RESCANNING_PLAN:
            cursor.execute(f"SET LOCAL {name} = off")


def test_one_batch_of_webhook_attempt_pruning_erases_at_most_the_batch_size(
    client: Client,
    receiver: Callable[..., Receiver],  # noqa: F811
) -> None:
    endpoint_make(receiver(failures=100).url)
    _, event = paid(client)
    delivery = WebhookDelivery.objects.get(event=event)
    now = timezone.now()
    # Oldest first, as attempts are written: the table's order is the age order.
    WebhookAttempt.objects.bulk_create(
        WebhookAttempt(
            delivery=delivery,
            cycle=1,
            number=n + 1,
            started_at=now - timedelta(days=40, minutes=ROWS - n),
            duration_ms=5,
            status_code=500,
            delivered=False,
            response_body="oops",
        )
        for n in range(ROWS)
    )
    _events(ROWS, age=OLD)
    _planner_steered()
    cutoff = now - timedelta(days=30)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + _ATTEMPTS_IN_SUBQUERY, [cutoff, BATCH])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Nested Loop Semi Join" in plan, plan  # the plan ceb2e11 describes

    # The statements ceb2e11 fixed stay bounded under these very settings.
    assert retention.stripe_events_prune(older_than=_cutoff(), batch_size=BATCH) == BATCH

    erased = webhook_attempts_prune(older_than=cutoff, batch_size=BATCH)

    left = WebhookAttempt.objects.filter(delivery=delivery).exclude(response_body="").count()
    assert (erased, left) == (BATCH, ROWS - BATCH)
