"""The shop's Prometheus metrics, declared in one place (docs/operations.md lists each
one with the alert to set on it). Code that counts something imports the metric from
here; what is read from the database at scrape time (backlogs, orders by status) is
collected by the /metrics view instead.
"""

from prometheus_client import Counter, Histogram

STRIPE_WEBHOOKS_RECEIVED = Counter(
    "djangomart_stripe_webhooks_received_total",
    "Stripe webhook deliveries received, by event type and outcome (new, duplicate, "
    "refused) and, for a refusal, its reason.",
    ["type", "outcome", "reason"],
)
STRIPE_EVENTS_PROCESSED = Counter(
    "djangomart_stripe_events_processed_total",
    "Stripe events processed by the event workers, by type and outcome (processed, "
    "ignored, unmatched, needs_attention, failed, dead).",
    ["type", "outcome"],
)
STRIPE_EVENT_LAG = Histogram(
    "djangomart_stripe_event_receipt_to_processed_seconds",
    "Time from a Stripe event's receipt to its processing.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
CHECKOUTS = Counter(
    "djangomart_checkouts_total",
    "Checkout attempts by outcome (created, replayed, refused, stripe_unavailable, ...).",
    ["outcome"],
)
STRIPE_API_CALLS = Counter(
    "djangomart_stripe_api_requests_total",
    "Calls to Stripe's API by operation and outcome (ok, refused, unavailable).",
    ["operation", "outcome"],
)
STRIPE_API_LATENCY = Histogram(
    "djangomart_stripe_api_request_duration_seconds",
    "Duration of calls to Stripe's API, by operation.",
    ["operation"],
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
    "Reconciliation runs by outcome (succeeded, failed, skipped).",
    ["outcome"],
)
