"""payments 0003 repairs history: refund (and dispute) events that an older DjangoMart
stored as `ignored` go back to `received`, and the event workers then process them.

The database is taken back to 0002 with Django's MigrationExecutor, the old state is
written with the historical models, 0003 is applied, and the schema is brought back to
the newest migrations afterwards whatever happens (slow: one test)."""

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from djangomart.catalog.demo import demo_catalog_seed
from djangomart.orders.models import Order, OrderEvent
from djangomart.payments.inbox import stripe_event_process, stripe_events_due
from djangomart.payments.models import StripeEvent
from tests.payments.builders import new_intent_id, order_build
from tests.payments.conftest import event_json, post_event, run_jobs, session_object
from tests.payments.refund_helpers import event_id_of, refund_object

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("stripe_settings")]

BEFORE = ("payments", "0002_refunds_disputes_reconciliation")
REPAIR = ("payments", "0003_process_ignored_money_back_events")


def migrate(*targets: tuple[str, str]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(list(targets))
    return MigrationExecutor(connection)  # a fresh one sees what is applied now


@pytest.fixture
def schema_restored() -> Iterator[None]:
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.usefixtures("schema_restored")
def test_ignored_refund_events_are_processed_again_after_the_upgrade(client) -> None:
    demo_catalog_seed()
    intent_id = new_intent_id()
    order = order_build()
    paid = event_json("checkout.session.completed", session_object(order, payment_intent=intent_id))
    assert post_event(client, paid).status_code == 200
    stripe_event_process(event_id=event_id_of(paid))
    assert Order.objects.get(pk=order.pk).status == "paid"

    executor = migrate(BEFORE)
    # What the old code left: a Dashboard refund, stored as a type it did not handle.
    old = executor.loader.project_state([BEFORE]).apps.get_model("payments", "StripeEvent")
    refund = refund_object(order, intent_id, amount=1200)
    day_ago = timezone.now() - timedelta(days=1)

    def stored(event_type: str, obj: dict, status: str) -> str:
        payload = json.loads(event_json(event_type, obj))
        old.objects.create(
            id=payload["id"], type=event_type, stripe_created=day_ago, payload=payload,
            received_at=day_ago, object_id=obj["id"], payment_intent_id=intent_id,
            status=status, attempts=1, processed_at=day_ago,
        )  # fmt: skip
        return str(payload["id"])

    ignored_refund = stored("refund.created", refund, "ignored")
    still_ignored = stored("payment_intent.created", {"id": intent_id, "object": "payment_intent"},
                           "ignored")  # fmt: skip
    processed_refund = stored("refund.updated", {**refund, "id": "re_test_done"}, "processed")

    migrate(REPAIR)

    statuses = dict(StripeEvent.objects.values_list("pk", "status"))
    assert (statuses[ignored_refund], statuses[still_ignored], statuses[processed_refund]) == (
        "received", "ignored", "processed",
    )  # fmt: skip
    # (Only columns 0003 knows: the current model has newer ones.)
    attempts = StripeEvent.objects.filter(pk=ignored_refund).values_list("attempts", flat=True)
    assert attempts.get() == 0

    migrate(*MigrationExecutor(connection).loader.graph.leaf_nodes())
    assert stripe_events_due() == 1  # due for the workers (payments 0004: due at once)
    run_jobs()

    assert StripeEvent.objects.get(pk=ignored_refund).status == "processed"
    order = Order.objects.get(pk=order.pk)
    assert (order.amount_refunded, order.payment_status) == (1200, "partially_refunded")
    assert list(order.refunds.values_list("stripe_refund_id", "status")) == [
        (refund["id"], "succeeded")
    ]
    assert order.events.filter(kind=OrderEvent.Kind.REFUND, stripe_event_id=ignored_refund).exists()
