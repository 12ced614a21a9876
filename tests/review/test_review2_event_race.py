"""Review 2: a dispute (or Dashboard refund) event about a PaymentIntent that the order's
own session is naming at this very moment. Its worker sees no Payment row yet (the
session's transaction has not committed), stores it `unmatched` with no order, and the
session's requeue (stripe_events_waiting_requeue), which ran before that commit, never
sees it: nothing queues it again (the sweep skips unmatched, the backfill skips known
ids), so the dispute is never recorded. Real concurrency: two connections."""

import json
import threading

import pytest
from django.db import connection, transaction
from django.test import Client

from djangomart.orders.models import Order
from djangomart.payments.inbox import stripe_event_process
from djangomart.payments.models import Dispute, StripeEvent
from tests.payments.builders import dispute_object, new_dispute_id, new_intent_id, order_build
from tests.payments.conftest import event_json, post_event, session_object
from tests.payments.race_helpers import lock_waiters_wait
from tests.payments.refund_helpers import work

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("stripe_settings", "demo_catalog"),
]


def stored(client: Client, event_type: str, obj: dict) -> str:
    payload = event_json(event_type, obj)
    assert post_event(client, payload).status_code == 200
    return str(json.loads(payload)["id"])


def test_a_dispute_processed_while_the_session_event_commits_is_not_lost(client: Client) -> None:
    order = order_build()
    intent_id = new_intent_id()
    session_event = stored(
        client, "checkout.session.completed", session_object(order, payment_intent=intent_id)
    )
    dispute_event = stored(
        client, "charge.dispute.created", dispute_object(order, intent_id, new_dispute_id())
    )

    applied, commit, errors = threading.Event(), threading.Event(), []

    def session_worker() -> None:
        # The session's processing, exactly as the worker runs it; only its commit is
        # later than the other worker's (as one slow COMMIT would make it).
        try:
            with transaction.atomic():
                stripe_event_process(event_id=session_event)
                applied.set()
                commit.wait(20)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            applied.set()
            connection.close()

    thread = threading.Thread(target=session_worker)
    thread.start()
    assert applied.wait(20)

    def dispute_worker() -> None:  # another worker, meanwhile
        try:
            stripe_event_process(event_id=dispute_event)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    other = threading.Thread(target=dispute_worker)
    other.start()
    # It finds no order yet and waits for the PaymentIntent being recorded
    # (orders.locks.payment_intent_lock) instead of deciding "unmatched" now.
    lock_waiters_wait(1)
    commit.set()
    thread.join(20)
    other.join(20)
    assert not errors

    work()  # whatever was queued again, until nothing is left
    assert StripeEvent.objects.get(pk=session_event).status == "processed"
    assert StripeEvent.objects.get(pk=dispute_event).status == "processed"
    assert Dispute.objects.filter(order=order).count() == 1
    assert Order.objects.get(pk=order.pk).disputed is True
