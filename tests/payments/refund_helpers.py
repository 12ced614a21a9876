"""Refund objects in Stripe's shape, and a prompt worker for tests that drive the inbox
inside the test's transaction: every delivery is posted signed to /webhooks/stripe and
processed at once, with whatever it queued (events requeued, refunds_sync jobs)."""

import json
import uuid
from typing import Any

from django.test import Client
from procrastinate.contrib.django.models import ProcrastinateJob

from djangomart.orders.models import Order
from djangomart.payments import refunds
from djangomart.payments.inbox import stripe_event_process
from djangomart.payments.models import StripeEvent
from tests.payments.conftest import event_json, post_event


def new_refund_id() -> str:
    return f"re_test_{uuid.uuid4().hex[:24]}"


def refund_object(
    order: Order, intent_id: str, *, refund_id: str | None = None, **overrides: Any
) -> dict[str, Any]:
    """A refund as Stripe embeds it in refund.* events; made in the Dashboard (no
    metadata) unless `metadata` says otherwise."""
    obj: dict[str, Any] = {
        "id": refund_id or new_refund_id(),
        "object": "refund",
        "amount": order.total,
        "balance_transaction": None,
        "charge": f"ch_test_{intent_id[8:]}",
        "created": 1_800_000_000,
        "currency": order.currency,
        "failure_reason": None,
        "metadata": {},
        "payment_intent": intent_id,
        "reason": None,
        "status": "succeeded",
    }
    obj.update(overrides)
    return obj


def refunded_charge_object(
    order: Order, intent_id: str, *, amount_refunded: int, refunds_data: list[Any] | None = None
) -> dict[str, Any]:
    """The charge in charge.refunded: cumulative amount_refunded; the refund list only when
    `refunds_data` is given (Stripe stopped sending it with API version 2022-11-15)."""
    obj: dict[str, Any] = {
        "id": f"ch_test_{intent_id[8:]}",
        "object": "charge",
        "amount": order.total,
        "amount_captured": order.total,
        "amount_refunded": amount_refunded,
        "currency": order.currency,
        "metadata": {"order_id": str(order.id)},
        "paid": True,
        "payment_intent": intent_id,
        "refunded": amount_refunded == order.total,
        "status": "succeeded",
    }
    if refunds_data is not None:
        obj["refunds"] = {"object": "list", "data": refunds_data, "has_more": False}
    return obj


def event_id_of(payload: str) -> str:
    return str(json.loads(payload)["id"])


def work() -> None:
    """What a prompt worker does next: every event queued (received, including those a
    session requeued) and every refunds_sync job, until nothing is left."""
    while True:
        events = list(
            StripeEvent.objects.filter(status=StripeEvent.Status.RECEIVED).values_list(
                "pk", flat=True
            )
        )
        jobs = list(ProcrastinateJob.objects.filter(task_name="refunds_sync", status="todo"))
        if not events and not jobs:
            return
        for event_id in events:
            stripe_event_process(event_id=event_id)
        for job in jobs:
            refunds.refunds_sync(
                order_id=uuid.UUID(job.args["order_id"]),
                payment_intent_id=job.args["payment_intent_id"],
            )
            ProcrastinateJob.objects.filter(pk=job.pk).update(status="succeeded")


def deliver(client: Client, payload: str) -> str:
    """One signed delivery, processed at once with all that follows from it; returns the
    event's status."""
    response = post_event(client, payload)
    assert response.status_code == 200, response.content
    event_id = event_id_of(payload)
    stripe_event_process(event_id=event_id)
    work()
    return StripeEvent.objects.get(pk=event_id).status


def send(client: Client, event_type: str, obj: dict[str, Any], **kw: Any) -> str:
    """A hand-built event delivered (deliver); returns its id."""
    payload = event_json(event_type, obj, **kw)
    deliver(client, payload)
    return event_id_of(payload)
