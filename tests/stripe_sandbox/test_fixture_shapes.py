"""Every object the sandbox returns has the fields the shop reads, with the same JSON
types as Stripe's published examples, vendored in tests/fixtures/stripe/fixtures3.json
(MIT, see the LICENSE there).

The fixtures are part of the repository: a missing file fails the check, never skips.
The sandbox is driven as the shop and a customer would drive it: sessions are created
and refunds made through the official SDK, payments and disputes through the scripted
/_sandbox/ routes, and every object is then fetched as raw JSON (plain HTTP, Bearer
key), so the check sees exactly the bytes the SDK would parse. Webhook payloads, and
the objects embedded in events, are checked too, since the shop reads those as well.

One fixture shows one state of an object, while the sandbox goes through several (an
open session has no `customer_details` yet, a completed one no `url`). So each type
is sampled in several states, and a field passes when:
  - it is present in every sample (a dotted path: wherever its parent is an object);
  - every non-null sandbox value has the fixture value's JSON type;
  - if the fixture value is not null, at least one sample has a non-null value
    (a field the sandbox always leaves null would hide a type mismatch).
Where the fixture value is null, Stripe's example says nothing about the type, so any
value (or null) passes.
"""

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.stripe_sandbox.harness import API_KEY, Receiver, SandboxServer, session_params

SUCCEEDS = "4242424242424242"
DECLINES = "4000000000000002"

# Top-level fields the shop reads, per Stripe object type.
SHOP_FIELDS: dict[str, list[str]] = {
    "checkout.session": [
        "id", "object", "amount_subtotal", "amount_total", "currency", "client_reference_id",
        "customer_details", "customer_email", "expires_at", "livemode", "metadata", "mode",
        "payment_intent", "payment_status", "status", "success_url", "cancel_url", "url",
        "created",
    ],
    "payment_intent": [
        "id", "object", "amount", "amount_received", "currency", "status", "metadata",
        "latest_charge", "last_payment_error", "created", "livemode",
    ],
    "charge": [
        "id", "object", "amount", "amount_captured", "amount_refunded", "captured", "currency",
        "disputed", "paid", "payment_intent", "refunded", "status", "metadata", "created",
        "livemode", "balance_transaction",
    ],
    "refund": [
        "id", "object", "amount", "charge", "currency", "payment_intent", "reason", "status",
        "metadata", "created",
    ],
    "dispute": [
        "id", "object", "amount", "charge", "currency", "payment_intent", "reason", "status",
        "created", "evidence", "livemode",
    ],
    "item": [
        "id", "object", "amount_subtotal", "amount_total", "currency", "description",
        "quantity", "price",
    ],
    "event": [
        "id", "object", "api_version", "created", "data", "livemode", "pending_webhooks",
        "request", "type",
    ],
}  # fmt: skip

# Nested fields the shop reads. Compared only where the fixture has the path (its
# example PaymentIntent's last_payment_error, for one, has only `type`).
SHOP_NESTED_FIELDS: dict[str, list[str]] = {
    "checkout.session": [
        "customer_details.email", "customer_details.name", "customer_details.address",
    ],
    "payment_intent": [
        "last_payment_error.type", "last_payment_error.code", "last_payment_error.message",
        "last_payment_error.decline_code", "last_payment_error.charge",
    ],
    "charge": [
        "billing_details.email", "outcome.type", "payment_method_details.type",
        "payment_method_details.card.brand", "payment_method_details.card.last4",
        "refunds.data",
    ],
    "refund": [],
    "dispute": ["evidence_details.due_by", "evidence.uncategorized_text"],
    "item": ["price.id", "price.currency", "price.unit_amount", "price.product"],
    "event": [
        "data.object", "data.previous_attributes", "request.id", "request.idempotency_key",
    ],
}  # fmt: skip

TYPES = list(SHOP_FIELDS)

_MISSING = object()


FIXTURES_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "stripe" / "fixtures3.json"


def json_type(value: Any) -> str:
    """The JSON type name of a decoded value (bool before int: bool is an int in Python)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number" if isinstance(value, float) else "int"
    if isinstance(value, str):
        return "str"
    if isinstance(value, dict):
        return "dict"
    if isinstance(value, list):
        return "list"
    raise TypeError(f"not a JSON value: {value!r}")


def lookup(obj: dict[str, Any], path: str) -> tuple[bool, Any]:
    """(applies, value) for a dotted path. It does not apply when a parent is null (an
    absent sub-object, like an open session's customer_details); a missing key where
    the parent is an object gives (True, _MISSING)."""
    node: Any = obj
    for part in path.split("."):
        if node is None:
            return False, None
        if not isinstance(node, dict):
            return True, _MISSING
        node = node.get(part, _MISSING)
        if node is _MISSING:
            return True, _MISSING
    return True, node


@dataclass
class Samples:
    """Raw JSON objects collected from the sandbox, by object type, with where each
    came from (for failure messages)."""

    by_type: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)

    def add(self, origin: str, obj: dict[str, Any]) -> None:
        self.by_type.setdefault(obj["object"], []).append((origin, obj))


class Driver:
    """Drives one sandbox through the shop's flows and fetches everything as raw JSON."""

    def __init__(self, sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        self.client = sandbox.client()
        self.samples = Samples()

    def get(self, path: str) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.sandbox.url}{path}", headers={"Authorization": f"Bearer {API_KEY}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body: dict[str, Any] = json.load(response)
        return body

    def fetch(self, path: str, origin: str) -> dict[str, Any]:
        obj = self.get(path)
        self.samples.add(f"{origin} (GET {path.split('?')[0]})", obj)
        return obj

    def new_session(self) -> str:
        session = self.client.v1.checkout.sessions.create(params=session_params())
        return session.id

    def pay(self, session_id: str, card: str) -> dict[str, Any]:
        result: dict[str, Any] = self.sandbox.control(
            f"checkout/sessions/{session_id}/pay", {"card": card}
        )
        return result

    def run(self, receiver: Receiver) -> Samples:
        # A session declined once, then paid; objects fetched in each state.
        first = self.new_session()
        self.fetch(f"/v1/checkout/sessions/{first}", "open session")
        assert self.pay(first, DECLINES)["outcome"] == "declined"
        declined = self.fetch(f"/v1/checkout/sessions/{first}", "session after a decline")
        intent = self.fetch(f"/v1/payment_intents/{declined['payment_intent']}", "declined intent")
        self.fetch(f"/v1/charges/{intent['latest_charge']}", "failed charge")
        assert self.pay(first, SUCCEEDS)["outcome"] == "succeeded"
        self.fetch(f"/v1/checkout/sessions/{first}", "completed session")
        intent = self.fetch(f"/v1/payment_intents/{intent['id']}", "succeeded intent")
        charge_id = intent["latest_charge"]
        self.fetch(f"/v1/charges/{charge_id}", "succeeded charge")
        for item in self.fetch_list(f"/v1/checkout/sessions/{first}/line_items"):
            self.samples.add("line item (GET .../line_items)", item)

        # Refunds through the SDK: one by payment intent with a reason, one by charge.
        by_intent = self.client.v1.refunds.create(
            params={
                "payment_intent": intent["id"],
                "amount": 500,
                "reason": "requested_by_customer",
                "metadata": {"order_id": "ord_123"},
            }
        )
        by_charge = self.client.v1.refunds.create(params={"charge": charge_id, "amount": 700})
        self.fetch(f"/v1/refunds/{by_intent.id}", "refund with a reason")
        self.fetch(f"/v1/refunds/{by_charge.id}", "refund by charge")
        self.fetch(f"/v1/charges/{charge_id}", "partly refunded charge")

        # A second order, paid and then disputed.
        second = self.new_session()
        paid = self.pay(second, SUCCEEDS)
        disputed_charge = paid["payment_intent"]["latest_charge"]
        dispute = self.sandbox.control(f"charges/{disputed_charge}/dispute", {"reason": "general"})
        self.fetch(f"/v1/disputes/{dispute['id']}", "open dispute")
        self.fetch(f"/v1/charges/{disputed_charge}", "disputed charge")
        self.sandbox.control(f"disputes/{dispute['id']}/close", {"outcome": "won"})
        self.fetch(f"/v1/disputes/{dispute['id']}", "won dispute")

        # A third session, expired by the shop.
        third = self.new_session()
        self.client.v1.checkout.sessions.expire(third)
        self.fetch(f"/v1/checkout/sessions/{third}", "expired session")

        # Events: every one fetched by id, and the same events as webhooks deliver them.
        events = self.fetch_list("/v1/events?limit=100")
        assert events, "the flows above emitted no events"
        for event in events:
            fetched = self.fetch(f"/v1/events/{event['id']}", event["type"])
            self.samples.add(
                f"object in {event['type']} (GET /v1/events/{{id}})", fetched["data"]["object"]
            )
        self.sandbox.wait_idle()
        receiver.wait_for(lambda r: len(r.received) >= len(events))
        assert receiver.bad_signatures == 0
        for delivery in receiver.received:
            payload = json.loads(delivery.payload)
            self.samples.add(f"{payload['type']} (webhook payload)", payload)
        return self.samples

    def fetch_list(self, path: str) -> list[dict[str, Any]]:
        page = self.get(path)
        assert page["object"] == "list"
        assert not page["has_more"], f"{path}: more than one page; raise the limit"
        return list(page["data"])


@pytest.fixture(scope="module")
def stripe_fixtures() -> dict[str, Any]:
    # No skip: a clone without the vendored file must fail here, loudly.
    assert FIXTURES_PATH.is_file(), f"Stripe's example objects are missing: {FIXTURES_PATH}"
    resources: dict[str, Any] = json.loads(FIXTURES_PATH.read_text())["resources"]
    return resources


@pytest.fixture(scope="module")
def samples(stripe_fixtures: dict[str, Any]) -> Iterator[Samples]:
    """One sandbox and one webhook receiver for the whole module: the flows run once."""
    sandbox = SandboxServer()
    receiver = Receiver()
    try:
        sandbox.add_endpoint(receiver.url)
        # Not timed: the waits inside (wait_idle, wait_for) bound it if something hangs.
        yield Driver(sandbox).run(receiver)
    finally:
        receiver.stop()
        sandbox.stop()


def shape_problems(
    object_type: str,
    example: dict[str, Any],
    samples: list[tuple[str, dict[str, Any]]],
    fields: list[str],
    nested: list[str],
) -> list[str]:
    """Every mismatch between the sandbox samples and Stripe's example, one line each."""
    problems = []
    paths = fields + [path for path in nested if lookup(example, path)[1] is not _MISSING]
    for path in paths:
        applies, expected_value = lookup(example, path)
        if expected_value is _MISSING:
            problems.append(f"{object_type}.{path}: not in the fixture (fix SHOP_FIELDS)")
            continue
        expected = json_type(expected_value)
        seen_non_null = False
        applicable = missing = 0
        for origin, obj in samples:
            applies, value = lookup(obj, path)
            if not applies:
                continue
            applicable += 1
            if value is _MISSING:
                missing += 1
                problems.append(f"{object_type}.{path}: missing in the sandbox's {origin}")
                continue
            actual = json_type(value)
            if actual == "null":
                continue
            seen_non_null = True
            if expected != "null" and actual != expected:
                problems.append(
                    f"{object_type}.{path}: sandbox has {actual} ({value!r:.60}) in its "
                    f"{origin}, Stripe's example has {expected} ({expected_value!r:.60})"
                )
        if applicable == 0:
            problems.append(f"{object_type}.{path}: no sandbox sample has this field's parent")
        elif expected != "null" and not seen_non_null and not missing:
            problems.append(
                f"{object_type}.{path}: null in every sandbox sample; Stripe's example has "
                f"{expected} ({expected_value!r:.60}), so its type is never checked"
            )
    return problems


@pytest.mark.parametrize("object_type", TYPES)
def test_fields_have_the_fixture_types(
    object_type: str, stripe_fixtures: dict[str, Any], samples: Samples
) -> None:
    collected = samples.by_type.get(object_type, [])
    assert collected, f"the flows produced no {object_type}"
    example = stripe_fixtures[object_type]
    problems = shape_problems(
        object_type,
        example,
        collected,
        SHOP_FIELDS[object_type],
        SHOP_NESTED_FIELDS[object_type],
    )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("object_type", TYPES)
def test_top_level_keys_cover_what_the_shop_reads(object_type: str, samples: Samples) -> None:
    collected = samples.by_type.get(object_type, [])
    assert collected, f"the flows produced no {object_type}"
    wanted = set(SHOP_FIELDS[object_type])
    missing = {
        origin: sorted(wanted - set(obj)) for origin, obj in collected if not wanted <= set(obj)
    }
    assert not missing, f"{object_type} lacks fields the shop reads: {missing}"


def test_checker_catches_a_wrong_type() -> None:
    """The comparison itself: a wrong type, a missing field and an always-null field fail;
    a null where Stripe's example is null passes."""
    example: dict[str, Any] = {
        "id": "x",
        "amount": 1,
        "url": "u",
        "note": None,
        "customer_details": {"email": "e"},
    }
    sample: dict[str, Any] = {
        "id": "y",
        "amount": "1",
        "url": None,
        "note": 5,
        "customer_details": {},
    }
    problems = shape_problems(
        "checkout.session",
        example,
        [("sample", sample)],
        ["id", "amount", "url", "note"],
        ["customer_details.email", "customer_details.phone"],
    )
    assert len(problems) == 3, problems
    assert "checkout.session.amount: sandbox has str" in problems[0]
    assert "checkout.session.url: null in every sandbox sample" in problems[1]
    assert "checkout.session.customer_details.email: missing" in problems[2]
    assert json_type(True) == "bool"
    assert json_type(1) == "int"
