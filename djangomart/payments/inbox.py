"""The webhook inbox: store every signed event once (counting repeat deliveries), then
process each in its own transaction in a worker. The inbox is the queue: a stored
`received` event is the unit of work, so the webhook's acknowledgement is one INSERT in
autocommit, durable together with what makes a worker process it (the row itself, and
a NOTIFY its trigger sends on commit; migration payments/0004).

Workers (payments.inbox_worker, `manage.py stripe_events_worker`) claim the next due
event with a transaction-scoped advisory lock on its id, skipping those another worker
holds, then lock its order (event claim, then orders, then variants: the global lock
order), run the handler for its type and mark the event, all in one transaction. An
exception rolls the handler's work back to a savepoint; the failure is then recorded in
the same transaction, under the same claim, with the attempt count and the time of the
next attempt on the row, until the event is `dead`. A crash at any point leaves either
the old state with the event unprocessed (and due), or the new state with the event
processed.
"""

import json
import logging
import traceback
import uuid
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from djangomart.core.metrics import STRIPE_EVENT_LAG, STRIPE_EVENTS_PROCESSED
from djangomart.orders.locks import orders_lock, payment_intent_lock
from djangomart.orders.models import Order
from djangomart.orders.services import order_flag
from djangomart.payments import ownership
from djangomart.payments.handlers import HANDLERS
from djangomart.payments.models import Payment, StripeEvent

logger = logging.getLogger(__name__)

Status = StripeEvent.Status


class InvalidEvent(ValueError):
    """Signed, but not a Stripe event we can store."""


class InvalidJson(InvalidEvent):
    """Signed, but not JSON at all (counted apart: docs/operations.md)."""


def event_parse(payload: bytes) -> dict[str, Any]:
    """The event as a dict, or InvalidEvent: JSON object with id, type, created, data.object."""
    try:
        event = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidJson("the body is not valid JSON") from None
    return event_check(event)


def event_check(event: Any) -> dict[str, Any]:
    """`event` if it is a Stripe event we can store (see event_parse), else InvalidEvent."""
    if not isinstance(event, dict) or event.get("object", "event") != "event":
        raise InvalidEvent("the body is not a Stripe event")
    if not isinstance(event.get("id"), str) or not event["id"].startswith("evt_"):
        raise InvalidEvent("the event has no evt_ id")
    if not isinstance(event.get("type"), str) or not _is_unix_time(event.get("created")):
        raise InvalidEvent("the event has no type or created time")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise InvalidEvent("the event has no data.object")
    return event


def _is_unix_time(value: Any) -> bool:
    """Whole seconds since 1970 that make a date (event_store converts them): not a bool
    (an int to Python), not negative, not past year 9999 (an OverflowError, a 500)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return False
    try:
        datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return False
    return True


# The status and processed_at parameters: `received` (due for a worker), or `ignored`
# with its time for a type no handler reads (see _row_values).
_INSERT = """
INSERT INTO payments_stripeevent (
    id, type, api_version, livemode, stripe_created, payload, received_at, delivery_count,
    object_id, checkout_session_id, payment_intent_id, status, processed_at, attempts,
    last_error, last_traceback, updated_at, source, next_attempt_at
) VALUES (%s, %s, %s, %s, %s, %s::jsonb, now(), 1, %s, %s, %s, %s, %s, 0, '', '', now(),
          'webhook', clock_timestamp())
ON CONFLICT (id) DO UPDATE SET delivery_count = payments_stripeevent.delivery_count + 1
RETURNING (xmax = 0)
"""


# An event read from GET /v1/events by the backfill (payments.backfill): never
# delivered, so delivery_count 0. DO NOTHING on conflict: a webhook delivery that stored
# it first (even one racing this insert) keeps its row and its count.
_INSERT_LISTED = """
INSERT INTO payments_stripeevent (
    id, type, api_version, livemode, stripe_created, payload, received_at, delivery_count,
    object_id, checkout_session_id, payment_intent_id, status, processed_at, attempts,
    last_error, last_traceback, updated_at, source, next_attempt_at
) VALUES (%s, %s, %s, %s, %s, %s::jsonb, now(), 0, %s, %s, %s, %s, %s, 0, '', '', now(),
          'backfill', clock_timestamp())
ON CONFLICT (id) DO NOTHING
RETURNING id
"""


def _row_values(event: dict[str, Any], payload: str) -> list[Any]:
    """The INSERT's parameters: the event's columns, the ids it is about (the object
    itself, or the PaymentIntent a charge, refund or dispute belongs to), and its status.
    An event of a type no handler reads is stored `ignored` at once, as a worker would
    mark it: in a storm, about 40% of Stripe's events (payment_intent.created,
    charge.succeeded, ...) then cost no worker a transaction. A release that starts
    reading such a type puts the ones stored before back in the inbox with a migration
    (as payments/0003 did for refunds and disputes), and stripe_events_ignored_requeue
    those its old web processes store meanwhile; staff's Replay works on them too."""
    obj = event["data"]["object"]
    object_id = obj.get("id") if isinstance(obj.get("id"), str) else ""
    kind = obj.get("object")
    session_id = object_id if kind == "checkout.session" else ""
    intent = object_id if kind == "payment_intent" else obj.get("payment_intent")
    return [
        event["id"],
        event["type"],
        str(event.get("api_version") or ""),
        bool(event.get("livemode")),
        datetime.fromtimestamp(event["created"], UTC),
        payload,
        object_id,
        session_id,
        intent if isinstance(intent, str) else "",
        *(
            (Status.RECEIVED, None)
            if event["type"] in HANDLERS
            else (Status.IGNORED, timezone.now())
        ),
    ]


def event_store(event: dict[str, Any], payload: bytes) -> bool:
    """Inserts the event, or counts one more delivery of it; returns whether it was new.
    One statement (the row is the work: committed, it is due for a worker, and its
    trigger's NOTIFY wakes one): this runs in the webhook request, which Stripe retries
    for days."""
    return _insert(_INSERT, _row_values(event, payload.decode())) is True


def event_store_listed(event: dict[str, Any]) -> bool:
    """Stores an event the backfill read from GET /v1/events (source `backfill`, no
    delivery counted), due for a worker exactly as a delivered one; returns whether it
    was new. An event the inbox already has, from a webhook delivery that may have
    landed a moment ago, is left as it is. InvalidEvent if it is not an event we can
    store."""
    event_check(event)
    # Stored as the webhook would carry it: Stripe's JSON (Decimal fields as strings).
    payload = json.dumps(event, separators=(",", ":"), default=str)
    return _insert(_INSERT_LISTED, _row_values(event, payload)) is not None


def _insert(sql: str, params: list[Any]) -> Any:
    """Runs one INSERT ... RETURNING and returns its one value (None for no row). In
    autocommit (the webhook request) the statement is its own transaction: no BEGIN or
    COMMIT round trip. Inside a caller's transaction it runs in a savepoint, so that a
    refused insert leaves that transaction usable."""
    savepoint = transaction.atomic() if connection.in_atomic_block else nullcontext()
    with savepoint, connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else row[0]


def order_match(event: StripeEvent) -> uuid.UUID | None:
    """The order an event claims to be about, to be locked and then checked for
    ownership (payments.ownership): the order holding its session id or its payment
    intent, else the one its metadata.order_id names (a session from the crash window, a
    PaymentIntent ahead of its session, or someone else's object)."""
    if event.data_object.get("object") == "checkout.session" and event.checkout_session_id:
        found = Order.objects.filter(stripe_checkout_session_id=event.checkout_session_id)
        if (pk := found.values_list("pk", flat=True).first()) is not None:
            return pk
    elif event.payment_intent_id:
        payment = Payment.objects.filter(stripe_payment_intent_id=event.payment_intent_id).first()
        if payment is not None:
            return payment.order_id
        found = Order.objects.filter(stripe_payment_intent_id=event.payment_intent_id)
        if (pk := found.values_list("pk", flat=True).first()) is not None:
            return pk
    metadata = event.data_object.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("order_id"), str):
        try:
            order_id = uuid.UUID(metadata["order_id"])
        except ValueError:
            return None
        if Order.objects.filter(pk=order_id).exists():
            return order_id
    return None


def stripe_event_process(*, event_id: str) -> str:
    """Processes one stored event now, exactly once; returns its status. Raises the
    handler's exception (after recording it) while attempts remain. Waits for a worker
    that holds the event. Staff tools and tests call it; workers call
    stripe_event_process_next."""
    with transaction.atomic():
        _claim(event_id)
        status, failure = _attempt(event_id)
    if failure is not None and status != Status.DEAD:
        raise failure
    return status


# The next due event that no other worker holds, due by the database's clock (as the
# INSERTs and updates set it) at this statement, not at the start of a transaction. The
# candidates are read first, without any lock, in the order of the partial index
# stripeevent_due; only then is the claim tried on each in turn until one is won, so
# that a worker holds exactly one event and never blocks on one another worker holds
# (tests/payments/test_inbox_queue.py pins both, whatever plan PostgreSQL picks).
# An advisory lock rather than a row lock: the ingest's ON CONFLICT DO UPDATE of a
# repeated delivery must not wait behind a worker that is itself waiting for an order
# lock. The candidates outnumber the workers that can hold an event at once (a worker
# holds one), so that a free event is always among them.
_CLAIM_NEXT = """
SELECT id FROM (
    SELECT id FROM payments_stripeevent
    WHERE status IN ('received', 'failed') AND next_attempt_at <= statement_timestamp()
    ORDER BY next_attempt_at, stripe_created
    LIMIT %s
) AS due
WHERE pg_try_advisory_xact_lock(hashtextextended('stripe_event:' || id, 0))
LIMIT 1
"""
CLAIM_CANDIDATES = 256  # at most this many event workers (docs/deployment.md)


def _claim_next() -> str | None:
    """Claims the next due event (inside atomic()); None when none is free."""
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_NEXT, [CLAIM_CANDIDATES])
        row = cursor.fetchone()
    return None if row is None else str(row[0])


def stripe_event_process_next() -> tuple[str, str] | None:
    """Claims the next due event and processes it (or records its failure); returns the
    event id and its status, or None when no event is due. Never raises for a failing
    handler: the event's row says when it is due again."""
    event_id: str | None = None
    try:
        with transaction.atomic():
            event_id = _claim_next()
            if event_id is None:
                return None
            status, failure = _attempt(event_id, due_only=True)
    except DatabaseError as exc:
        if event_id is None:
            raise  # the claim itself: the database is away, for the worker to wait out
        # The attempt lost its transaction (its connection killed, maybe by what the
        # handler did): counted, in a new one, or an event that always does this would
        # be retried forever and never be dead. If the database is away, the worker
        # waits it out and the event is retried uncounted. Another worker may have
        # taken the event since the claim died with the connection: then it is theirs.
        connection.close()
        with transaction.atomic():
            _claim(event_id)
            if events_due().filter(pk=event_id).exists():
                status, failure = _failure_record(event_id, exc), exc
            else:
                current = StripeEvent.objects.filter(pk=event_id).values_list("status", flat=True)
                status, failure = current.first() or "missing", None
    if failure is not None:
        logger.warning(
            "stripe event failed", extra={"event_id": event_id, "error": f"{failure!r}"[:500]}
        )
    return event_id, status


def _attempt(event_id: str, *, due_only: bool = False) -> tuple[str, Exception | None]:
    """One attempt at an event whose claim this transaction holds: its status, and the
    handler's exception if it raised. The handler runs in a savepoint, so that its
    failure is recorded in the same transaction, under the same claim: no other worker
    can attempt the event again between the failure and its record (and its backoff).
    `due_only`: an event that stopped being due since the claim's candidates were read
    (another worker finished it, or failed it and set its next attempt) is left as it
    is."""
    try:
        with transaction.atomic():
            return _process(event_id, due_only=due_only), None
    except Exception as exc:  # noqa: BLE001 - whatever the handler raised is recorded
        return _failure_record(event_id, exc), exc


_DUE = Q(status__in=[Status.RECEIVED, Status.FAILED], next_attempt_at__lte=Now())


def events_due() -> QuerySet[StripeEvent]:
    """The events due for a worker now, in the order workers take them (_CLAIM_NEXT)."""
    return StripeEvent.objects.filter(_DUE).order_by("next_attempt_at", "stripe_created")


def stripe_events_due() -> int:
    """How many events are due for a worker now (the backlog)."""
    return events_due().count()


def _claim(event_id: str) -> None:
    """Serializes processing of one event across workers until the transaction ends:
    the lock _CLAIM_NEXT tries (taking it again in the same transaction is a no-op). It
    is the first lock of the global order (event, orders, variants)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                       [f"stripe_event:{event_id}"])  # fmt: skip


# A declined attempt moves neither money nor the lifecycle: it reaches the timeline at
# once, even while its PaymentIntent is not yet known to be the order's own (Stripe
# sends it while the customer is still on the payment page, before any session event
# names the PaymentIntent). Its handler records no Payment row for an unknown one.
ATTEMPT_TYPES = frozenset({"payment_intent.payment_failed"})

# The worker owns these columns; delivery_count belongs to the ingest, which may count
# a repeated delivery while the worker runs.
_WORKER_FIELDS = ["status", "attempts", "order", "processed_at", "last_error", "last_traceback",
                  "next_attempt_at", "updated_at"]  # fmt: skip


def _process(event_id: str, *, due_only: bool = False) -> str:
    """Inside the transaction that holds the event's claim (see _attempt for `due_only`).
    The event is read in the same statement that says whether it is still due, by the
    database's clock: one round trip."""
    event = (
        StripeEvent.objects.filter(pk=event_id)
        .annotate(due=ExpressionWrapper(_DUE, output_field=BooleanField()))
        .first()
    )
    if event is None:
        logger.warning("stripe event to process does not exist", extra={"event_id": event_id})
        return "missing"
    if event.status in StripeEvent.FINAL:
        return event.status  # a duplicate job: someone processed it already
    if due_only and not event.due:
        return event.status
    event.attempts += 1
    handler = HANDLERS.get(event.type)
    if handler is None:
        return _finish(event, Status.IGNORED)
    not_ours = ownership.event_not_ours(event.payload)
    if not_ours is not None:
        logger.warning("stripe event is not ours", extra={"event_id": event.id, "why": not_ours})
        return _finish(event, Status.UNMATCHED, error=not_ours)
    order_id = order_match(event)
    if order_id is None and event.payment_intent_id:
        # The PaymentIntent may be becoming an order's own in a transaction not committed
        # yet, whose requeue of waiting events already looked (orders.locks).
        payment_intent_lock(event.payment_intent_id)
        if order_match(event) is not None:
            # It just did: process again from the start, taking the order's lock then,
            # never while holding this one. Not an attempt that counts.
            event.attempts -= 1
            event.status = Status.RECEIVED
            event.next_attempt_at = Now()
            event.save(update_fields=_WORKER_FIELDS)
            return Status.RECEIVED
    if order_id is None:
        logger.warning("stripe event matches no order", extra={"event_id": event.id})
        return _finish(event, Status.UNMATCHED, error="No order matches this event.")
    order = orders_lock([order_id])[order_id]
    # Ownership is decided under the order's lock: checkout may be storing the session
    # id, or another event recording the PaymentIntent, right now.
    obj = event.data_object
    event.order = order  # linked even when not applied, so staff see it on the order
    if obj.get("object") == "checkout.session":
        if not ownership.session_is_own(order, obj):
            error = (
                f"Checkout Session {obj.get('id')} is not this order's own session; not applied."
            )
            order_flag(order, "foreign_session", stripe_event_id=event.id, message=error)
            return _finish(event, Status.UNMATCHED, error=error)
    elif event.type not in ATTEMPT_TYPES and not ownership.intent_is_own(
        order, intent_id := event.payment_intent_id
    ):
        # event_store recorded the PaymentIntent: the object itself, or the one a charge,
        # refund or dispute belongs to. Maybe it is ahead of its session's event
        # (Stripe sends them in any order), maybe someone else's: nothing proves which
        # yet. When the order's own session names it, facts._payment queues this event
        # again.
        return _finish(
            event,
            Status.UNMATCHED,
            error=(
                f"Waiting: PaymentIntent {intent_id or '(none)'} is not known to be this "
                "order's own yet; processed again when the order's Checkout Session names it."
            ),
        )
    handler(event, order)
    return _finish(event, Status.PROCESSED)


def _finish(event: StripeEvent, status: str, *, error: str = "") -> str:
    event.status = status
    event.processed_at = timezone.now()
    event.last_error = error
    event.last_traceback = ""
    event.save(update_fields=_WORKER_FIELDS)
    _outcome_count(event.type, status, lag=(event.processed_at - event.received_at))
    return status


def _outcome_count(event_type: str, status: str, *, lag: timedelta | None = None) -> None:
    """Counts the attempt's outcome (and the event's time from receipt) once its
    transaction commits: an attempt rolled back (its savepoint, or a lost connection)
    counted nothing, and its recorded failure counts instead."""

    def count() -> None:
        STRIPE_EVENTS_PROCESSED.labels(event_type, status).inc()
        if lag is not None:
            STRIPE_EVENT_LAG.observe(max(0.0, lag.total_seconds()))

    transaction.on_commit(count)


def _failure_record(event_id: str, exc: Exception) -> str:
    """Records a failed attempt, in the transaction that holds the event's claim (the
    attempt's own writes rolled back to its savepoint)."""
    event = StripeEvent.objects.filter(pk=event_id).first()
    if event is None:
        return "missing"
    if event.status in StripeEvent.FINAL:
        return event.status  # never overwrite a fact another attempt already recorded
    event.attempts += 1
    event.last_error = f"{type(exc).__name__}: {exc}"
    event.last_traceback = "".join(traceback.format_exception(exc))
    if event.attempts >= settings.STRIPE_EVENT_MAX_ATTEMPTS:
        event.status = Status.DEAD
        logger.error("stripe event is dead", extra={"event_id": event_id, "error": str(exc)})
    else:
        event.status = Status.FAILED
        event.next_attempt_at = Now() + retry_delay(event.attempts)
    event.save(update_fields=_WORKER_FIELDS)
    _outcome_count(event.type, event.status)
    return event.status


def retry_delay(attempts: int) -> timedelta:
    """How long a failed event waits after its `attempts`-th attempt: 2, 4, 8 ... seconds,
    at most an hour."""
    return timedelta(seconds=min(2**attempts, 3600))


def stripe_event_replay(*, event_id: str) -> bool:
    """Staff's Replay: makes a dead, failed, unmatched or ignored event due again from
    scratch; returns whether it did (a processed event is never replayed, nor one whose
    payload the retention job pruned: there is nothing left to process)."""
    with transaction.atomic():
        updated = (
            StripeEvent.objects.filter(pk=event_id, payload_pruned_at__isnull=True)
            .exclude(status=Status.PROCESSED)
            .update(
                status=Status.RECEIVED,
                attempts=0,
                last_error="",
                last_traceback="",
                processed_at=None,
                next_attempt_at=Now(),
                updated_at=timezone.now(),
            )
        )
    return bool(updated)


def stripe_events_waiting_requeue(*, order_id: uuid.UUID, intent_id: str) -> int:
    """Queues again the events about `intent_id` (the PaymentIntent itself, or a charge,
    refund or dispute of it) that waited for the order's own session to name it (see
    _process), including those that matched no order at all (a refund made in the
    Dashboard carries none of our metadata). Inside the transaction that holds the
    order's lock, so no such event of this order can be marked waiting after this
    looked."""
    ids = list(
        StripeEvent.objects.filter(status=Status.UNMATCHED, payment_intent_id=intent_id)
        .filter(Q(order_id=order_id) | Q(order__isnull=True))
        .values_list("pk", flat=True)
    )
    if not ids:
        return 0
    now = timezone.now()
    StripeEvent.objects.filter(pk__in=ids).update(
        status=Status.RECEIVED, attempts=0, last_error="", processed_at=None,
        next_attempt_at=Now(), updated_at=now,
    )  # fmt: skip
    return len(ids)


REQUEUE_IGNORED_WITHIN = timedelta(days=1)


def stripe_events_ignored_requeue() -> int:
    """Queues again the events stored `ignored` whose type a handler now reads; returns
    how many. The acknowledgement decides `ignored` by the HANDLERS of the web process
    that stored the event: during a release that starts handling a type, web processes
    of the old release still store that type `ignored` after the new release's migration
    repaired the older ones. The reconciliation job (payments.backfill.reconcile_run)
    runs this every five minutes, so such an event is processed by the new release's
    workers within minutes. An event is `ignored` for no other reason than its type, so
    one of a handled type is always such a leftover. Only the last day's: a release's
    overlap lasts minutes, and the (type, received_at) index keeps each run to the
    events of that day (older ones are a migration's job, as in payments/0003)."""
    since = timezone.now() - REQUEUE_IGNORED_WITHIN
    return StripeEvent.objects.filter(
        status=Status.IGNORED, type__in=list(HANDLERS), received_at__gte=since
    ).update(
        status=Status.RECEIVED, attempts=0, last_error="", processed_at=None,
        next_attempt_at=Now(), updated_at=timezone.now(),
    )  # fmt: skip
