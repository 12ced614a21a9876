"""`manage.py stripe_events_worker`: one Stripe event worker (payments.inbox_worker)
until SIGTERM or SIGINT, which let it finish the event in hand. `--drain` processes
what is due and exits instead."""

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from djangomart.payments.inbox_worker import stripe_events_work, stripe_events_worker_main


class Command(BaseCommand):
    help = "Processes stored Stripe events (the webhook inbox) until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--drain", action="store_true", help="process the events due now, then exit"
        )

    def handle(self, *args: Any, drain: bool, **options: Any) -> None:
        if drain:
            self.stdout.write(f"{stripe_events_work()} events processed")
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        stripe_events_worker_main(stop)
