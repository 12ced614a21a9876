"""The shop's Prometheus metrics, declared in one place (docs/operations.md lists each
one with the alert to set on it). Code that counts something imports the metric from
here; what is read from the database at scrape time (backlogs, orders by status) is
collected by djangomart.core.metrics_db instead, and GET /metrics serves both
(djangomart.core.metrics_view).

Multi-process mode: with PROMETHEUS_MULTIPROC_DIR in the environment when
prometheus_client is first imported (it decides then), every process (each gunicorn
worker, each Stripe event worker, the job worker) writes its counts to files of its own
in that directory, and a scrape of any web process on the machine adds up all of them.
Without it (tests, `manage.py shell`) the counts are this process's own.

Label values are bounded: an event type is one of Stripe's (the ingest counts a type
only once its signature is checked), and every other label is one of a few literals.
"""

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

# The event type label of a delivery refused before its body was read as an event.
UNKNOWN_TYPE = "unknown"

STRIPE_WEBHOOKS_RECEIVED = Counter(
    "djangomart_stripe_webhooks_received_total",
    "Stripe webhook deliveries received, by event type and outcome (new, duplicate, "
    "refused, error) and, for a refusal or an error, its reason.",
    ["type", "outcome", "reason"],
)
STRIPE_EVENTS_PROCESSED = Counter(
    "djangomart_stripe_events_processed_total",
    "Stripe event processing attempts by the event workers, by type and outcome "
    "(processed, ignored, unmatched, failed: retried later, dead: given up).",
    ["type", "outcome"],
)
STRIPE_EVENT_LAG = Histogram(
    "djangomart_stripe_event_receipt_to_processed_seconds",
    "Time from a Stripe event's receipt to the end of its processing (processed, ignored "
    "or unmatched by a worker).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
CHECKOUTS = Counter(
    "djangomart_checkouts_total",
    "Checkouts by outcome (created, replayed, refused, stripe_error, error) and, unless "
    "created or replayed, the error code answered.",
    ["outcome", "reason"],
)
STRIPE_API_CALLS = Counter(
    "djangomart_stripe_api_requests_total",
    "Calls to Stripe's API (retries included) by operation and outcome (ok, refused, "
    "not_found, unavailable, in_use, error).",
    ["operation", "outcome"],
)
STRIPE_API_LATENCY = Histogram(
    "djangomart_stripe_api_request_duration_seconds",
    "Duration of calls to Stripe's API (retries included), by operation.",
    ["operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15),
)
EMAILS = Counter(
    "djangomart_emails_total",
    "Emails by kind and outcome (sent, failed: to be retried, dead: given up).",
    ["kind", "outcome"],
)
OUTBOUND_WEBHOOKS = Counter(
    "djangomart_outbound_webhooks_total",
    "Outbound webhook delivery attempts by event type and outcome (delivered, failed: "
    "to be retried, dead: given up).",
    ["type", "outcome"],
)
RECONCILIATION_RUNS = Counter(
    "djangomart_reconciliation_runs_total",
    "Reconciliation runs by outcome (succeeded, failed, skipped: another run held the lock).",
    ["outcome"],
)


def multiprocess_dir() -> str:
    """The directory every process of this machine writes its counts to, or "" when each
    process keeps its own (prometheus_client reads the same variable)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def metrics_exposition(*extra: Collector) -> bytes:
    """Every metric in Prometheus' text format: the counts of all this machine's processes
    (or of this one alone), then what each collector in `extra` reads now."""
    if multiprocess_dir():
        # Built per scrape, as prometheus_client's documentation does: it reads the files
        # of every process, live or dead, each time.
        counted = CollectorRegistry()
        MultiProcessCollector(counted)  # type: ignore[no-untyped-call]
    else:
        counted = REGISTRY
    scraped = CollectorRegistry()
    for collector in extra:
        scraped.register(collector)
    return generate_latest(counted) + generate_latest(scraped)
