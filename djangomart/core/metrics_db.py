"""The gauges read from the database when /metrics is scraped: the Stripe inbox's backlog
and the age of its oldest unprocessed event, orders by status, and the last successful
reconciliation. They are the database's truth, the same whichever process or machine is
scraped (alert on max(), not sum(), across machines).

Each number is one index lookup or index-only scan (docs/operations.md gives the plans):
the inbox's statuses that still need work or a human are counted through
stripeevent_status_received, orders through order_status_expires and the partial
order_needs_attention index, the last successful run by walking the primary key back
from the newest run. All of it runs in one transaction with a statement timeout, so
that a slow database makes the scrape report `djangomart_metrics_database_up 0`
instead of hanging it.
"""

import logging
from collections.abc import Iterator

from django.db import DatabaseError, connection, transaction
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from djangomart.orders.models import OrderStatus
from djangomart.payments.models import StripeEventStatus

logger = logging.getLogger(__name__)

# The inbox statuses counted: those that still need a worker (received, failed) or a
# human (unmatched, dead). processed and ignored only grow; counting them at every
# scrape would cost a scan of most of the table.
_Status = StripeEventStatus
INBOX_STATUSES = [
    s.value for s in (_Status.RECEIVED, _Status.FAILED, _Status.UNMATCHED, _Status.DEAD)
]
UNPROCESSED = [_Status.RECEIVED.value, _Status.FAILED.value]
STATEMENT_TIMEOUT_MS = 2000

# One row per status: its count and its oldest event's age, each through the
# (status, received_at) index (a per-status subquery, so that min() is the first entry
# of that status's range rather than a sort).
_INBOX_SQL = """
SELECT s.status,
       (SELECT count(*) FROM payments_stripeevent e WHERE e.status = s.status),
       (SELECT extract(epoch FROM statement_timestamp() - min(e.received_at))
          FROM payments_stripeevent e WHERE e.status = s.status)
FROM unnest(%s::text[]) AS s(status)
"""
_ORDERS_SQL = "SELECT status, count(*) FROM orders_order GROUP BY status"
_ATTENTION_SQL = "SELECT count(*) FROM orders_order WHERE needs_attention"
_LAST_RECONCILED_SQL = """
SELECT extract(epoch FROM finished_at) FROM payments_reconciliationrun
WHERE status = 'succeeded' AND finished_at IS NOT NULL ORDER BY id DESC LIMIT 1
"""


class DatabaseCollector(Collector):
    """prometheus_client calls collect() at each scrape (registered per scrape by the
    /metrics view, never in the default registry: a test or a shell that renders the
    default registry must not query the database)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "djangomart_metrics_database_up",
            "1 when the gauges read from the database at this scrape could be read.",
        )
        try:
            families = self._read()
        except DatabaseError as exc:
            logger.warning("metrics: the database gauges could not be read",
                           extra={"error": str(exc)[:500]})  # fmt: skip
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self) -> list[GaugeMetricFamily]:
        # A transaction of its own only for SET LOCAL: the timeout ends with it.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
            # The orders' count is an index-only scan of them all; parallel workers would
            # take more of the database's cores for it at each scrape, for little gain.
            cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            cursor.execute(_INBOX_SQL, [INBOX_STATUSES])
            inbox = {status: (count, age) for status, count, age in cursor.fetchall()}
            cursor.execute(_ORDERS_SQL)
            orders = dict(cursor.fetchall())
            cursor.execute(_ATTENTION_SQL)
            (attention,) = cursor.fetchone()
            cursor.execute(_LAST_RECONCILED_SQL)
            last_reconciled = cursor.fetchone()

        backlog = GaugeMetricFamily(
            "djangomart_stripe_inbox_events",
            "Stripe events in the inbox that still need a worker (received, failed) or a "
            "human (unmatched, dead), by status.",
            labels=["status"],
        )
        for status in INBOX_STATUSES:
            backlog.add_metric([status], inbox[status][0])
        ages = [float(inbox[status][1]) for status in UNPROCESSED if inbox[status][1] is not None]
        oldest = GaugeMetricFamily(
            "djangomart_stripe_inbox_oldest_unprocessed_age_seconds",
            "Seconds since the oldest Stripe event still received or failed was received; "
            "0 when there is none.",
        )
        oldest.add_metric([], max([0.0, *ages]))
        by_status = GaugeMetricFamily(
            "djangomart_orders", "Orders by lifecycle status.", labels=["status"]
        )
        for status in OrderStatus.values:
            by_status.add_metric([status], orders.get(status, 0))
        needing = GaugeMetricFamily(
            "djangomart_orders_needing_attention", "Orders flagged needs_attention."
        )
        needing.add_metric([], attention)
        families = [backlog, oldest, by_status, needing]
        if last_reconciled is not None:
            reconciled = GaugeMetricFamily(
                "djangomart_reconciliation_last_success_timestamp_seconds",
                "When the last successful reconciliation run finished (Unix time).",
            )
            reconciled.add_metric([], float(last_reconciled[0]))
            families.append(reconciled)
        return families
