"""`manage.py reconcile`: one reconciliation run now (docs: "Webhooks were down")."""

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from djangomart.payments import backfill

_AGO = re.compile(r"^(\d+)([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def since_parse(value: str, now: datetime) -> datetime:
    """`--since`: an ISO 8601 time (UTC unless it names its offset) or an age such as
    90m, 6h, 2d; within Stripe's 30 days of events and not in the future."""
    ago = _AGO.match(value.strip())
    if ago:
        try:
            since = now - timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
        except OverflowError:
            raise CommandError(f"--since {value!r} is further back than 30 days.") from None
    else:
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            parsed = None
        if parsed is None:
            raise CommandError(
                f"--since {value!r}: give an ISO 8601 time (2025-01-31T12:00:00Z) or an age "
                "(90m, 6h, 2d)."
            )
        since = parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)
    if since < now - backfill.RETENTION:
        raise CommandError(
            f"--since {value!r} is more than 30 days ago: Stripe lists events for 30 days "
            "only. Older events must be recovered another way (see the runbook)."
        )
    if since > now:
        raise CommandError(f"--since {value!r} is in the future.")
    return since


class Command(BaseCommand):
    help = (
        "Reconcile with Stripe now: store every handled event the inbox is missing (read "
        "from GET /v1/events from the stored cursor) and check overdue pending orders. "
        "Prints a one-line summary; exits with status 1 if Stripe could not be read."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since",
            help=(
                "read events from this time instead of the stored cursor: an ISO 8601 time "
                "or an age (90m, 6h, 2d), at most 30 days back"
            ),
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=60.0,
            help="seconds to wait for a run already in progress (default 60)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        since = None
        if options["since"]:
            since = since_parse(options["since"], timezone.now())
        try:
            run = backfill.reconcile_run(
                trigger="command", since=since, wait_seconds=max(0.0, options["wait"])
            )
        except backfill.ReconcileBusy:
            raise CommandError(
                "Another reconciliation run is still in progress (see Reconciliation runs in "
                "the admin); try again when it has finished.",
                returncode=2,
            ) from None
        self.stdout.write(backfill.run_summary(run))
        if run.status == run.Status.FAILED:
            for error in run.errors:
                self.stderr.write(f"reconcile: {error['error']}")
            raise CommandError(
                f"reconciliation run {run.pk} failed; the event cursor was not moved."
            )
