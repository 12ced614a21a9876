"""History repaired: events stored `ignored` before DjangoMart handled refunds and
disputes are put back to `received` (attempts 0), so that the inbox's sweep
(stripe_events_sweep, every minute, oldest first) processes them like a new delivery.

Data only, with historical models: the list of types is frozen here on purpose (the
handlers may change later; this migration must mean the same thing forever). Dispute
types are included so that the repair happens once for all the money-back events.
"""

from django.db import migrations
from django.utils import timezone

NOW_HANDLED = (
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.refund.updated",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
)


def ignored_events_receive(apps, schema_editor):
    StripeEvent = apps.get_model("payments", "StripeEvent")
    StripeEvent.objects.filter(status="ignored", type__in=NOW_HANDLED).update(
        status="received",
        attempts=0,
        last_error="",
        last_traceback="",
        processed_at=None,
        updated_at=timezone.now(),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0002_refunds_disputes_reconciliation"),
    ]

    # Going back leaves the events as they are: processed ones stay processed.
    operations = [
        migrations.RunPython(ignored_events_receive, migrations.RunPython.noop, elidable=True),
    ]
