"""GET /v1/events as reconciliation reads it: `delivery_success` from the delivery log,
Stripe's 30-day retention on the sandbox clock, paging both ways, and the 20-type limit.
The official SDK over real HTTP; deliveries go to a receiver that verifies signatures."""

from typing import Any

import pytest
import stripe

from tests.stripe_sandbox.harness import ControlError, Receiver, SandboxServer, session_params

THIRTY_DAYS = 30 * 24 * 60 * 60
PAYMENT_EVENTS = 4  # payment_intent.created, charge.succeeded, .succeeded, session.completed


def pay_session(sandbox: SandboxServer) -> str:
    session = sandbox.client().v1.checkout.sessions.create(params=session_params())
    sandbox.control(f"checkout/sessions/{session.id}/pay", {"card": "4242424242424242"})
    return session.id


def listed(sandbox: SandboxServer, **params: Any) -> list[str]:
    query: Any = {"limit": 100, **params}
    page = sandbox.client().v1.events.list(params=query)
    assert not page.has_more
    return [event.id for event in page.data]


def refused(call: Any) -> Any:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        call()
    return caught.value


# -- delivery_success -------------------------------------------------------------------


def test_delivery_success_tells_events_waiting_in_an_outage_from_delivered_ones(
    sandbox: SandboxServer, receiver: Receiver
) -> None:
    pay_session(sandbox)
    sandbox.wait_idle()
    delivered = listed(sandbox)
    sandbox.configure(paused=True)
    pay_session(sandbox)
    waiting = [e for e in listed(sandbox) if e not in delivered]
    assert len(delivered) == len(waiting) == PAYMENT_EVENTS
    assert listed(sandbox, delivery_success=True) == delivered
    assert listed(sandbox, delivery_success=False) == waiting
    event = sandbox.client().v1.events.retrieve(waiting[0])
    assert event.pending_webhooks == 1

    sandbox.configure(paused=False)
    sandbox.wait_idle()
    assert listed(sandbox, delivery_success=True) == [*waiting, *delivered]
    assert listed(sandbox, delivery_success=False) == []
    assert sandbox.client().v1.events.retrieve(waiting[0]).pending_webhooks == 0


def test_an_event_whose_deliveries_all_failed_is_not_a_delivery_success(
    sandbox: SandboxServer,
) -> None:
    refusing = Receiver(respond=lambda event: 500)
    sandbox.add_endpoint(refusing.url)
    sandbox.configure(max_attempts=2, retry_base=0.01)
    try:
        pay_session(sandbox)
        sandbox.wait_idle()
    finally:
        refusing.stop()
    everything = listed(sandbox)
    outcomes = {d["outcome"] for e in everything for d in sandbox.deliveries(event=e)}
    assert outcomes == {"failed", "abandoned"}
    assert listed(sandbox, delivery_success=False) == everything
    assert listed(sandbox, delivery_success=True) == []


def test_delivery_success_needs_every_endpoint_to_have_the_event(
    sandbox: SandboxServer, receiver: Receiver
) -> None:
    refusing = Receiver(respond=lambda event: 500)
    sandbox.add_endpoint(refusing.url)
    sandbox.configure(max_attempts=1)
    try:
        pay_session(sandbox)
        sandbox.wait_idle()
    finally:
        refusing.stop()
    assert len(receiver.received) == PAYMENT_EVENTS  # the other endpoint got them all
    assert listed(sandbox, delivery_success=True) == []
    assert len(listed(sandbox, delivery_success=False)) == PAYMENT_EVENTS


def test_a_resent_event_is_pending_again_until_delivered(
    sandbox: SandboxServer, receiver: Receiver
) -> None:
    pay_session(sandbox)
    sandbox.wait_idle()
    event_id = listed(sandbox)[0]
    sandbox.configure(paused=True)
    sandbox.control(f"events/{event_id}/resend", {})
    assert listed(sandbox, delivery_success=False) == [event_id]
    sandbox.configure(paused=False)
    sandbox.wait_idle()
    assert listed(sandbox, delivery_success=False) == []
    assert receiver.ids().count(event_id) == 2


def test_with_no_endpoint_every_event_counts_as_delivered(sandbox: SandboxServer) -> None:
    pay_session(sandbox)
    assert len(listed(sandbox, delivery_success=True)) == PAYMENT_EVENTS
    assert listed(sandbox, delivery_success=False) == []


def test_delivery_success_must_be_a_boolean(sandbox: SandboxServer) -> None:
    error = refused(
        lambda: sandbox.client().v1.events.list(params={"delivery_success": "maybe"})  # type: ignore[arg-type]
    )
    assert (error.http_status, error.param) == (400, "delivery_success")


# -- retention --------------------------------------------------------------------------


def test_events_older_than_30_days_of_sandbox_clock_are_no_longer_listed_or_retrievable(
    sandbox: SandboxServer,
) -> None:
    pay_session(sandbox)
    old = listed(sandbox)
    # The sandbox clock also runs on real time: a minute of margin either side.
    sandbox.control("clock/advance", {"seconds": THIRTY_DAYS - 60})
    assert listed(sandbox) == old
    assert sandbox.client().v1.events.retrieve(old[0]).id == old[0]

    sandbox.control("clock/advance", {"seconds": 120})
    assert set(old).isdisjoint(listed(sandbox))
    with pytest.raises(stripe.InvalidRequestError) as missing:
        sandbox.client().v1.events.retrieve(old[0])
    assert missing.value.http_status == 404
    error = refused(lambda: sandbox.client().v1.events.list(params={"starting_after": old[-1]}))
    assert error.param == "starting_after"
    with pytest.raises(ControlError) as resend:
        sandbox.control(f"events/{old[0]}/resend", {})
    assert resend.value.status == 404


# -- paging -----------------------------------------------------------------------------


def test_ending_before_walks_forward_in_time_page_by_page(sandbox: SandboxServer) -> None:
    for _ in range(3):
        pay_session(sandbox)
    everything = listed(sandbox)  # newest first
    assert len(everything) == 3 * PAYMENT_EVENTS
    oldest = everything[-1]
    walked: list[str] = []
    more: list[bool] = []
    params: dict[str, Any] = {"limit": 5, "ending_before": oldest}
    while True:
        page = sandbox.client().v1.events.list(params=params)  # type: ignore[arg-type]
        ids = [e.id for e in page.data]
        # Each page is newest first, and holds the events just after the cursor.
        assert ids == [e for e in everything if e in ids]
        walked = ids + walked
        more.append(page.has_more)
        if not page.has_more:
            break
        params["ending_before"] = ids[0]
    assert walked == everything[:-1]
    assert more == [True, True, False]


def test_ending_before_keeps_the_filters(sandbox: SandboxServer) -> None:
    for _ in range(3):
        pay_session(sandbox)
    completed = listed(sandbox, type="checkout.session.completed")
    page = sandbox.client().v1.events.list(
        params={"type": "checkout.session.completed", "ending_before": completed[-1], "limit": 1}
    )
    assert ([e.id for e in page.data], page.has_more) == ([completed[1]], True)


def test_more_than_20_types_are_refused(sandbox: SandboxServer) -> None:
    types = [f"charge.type_{i}" for i in range(21)]
    error = refused(lambda: sandbox.client().v1.events.list(params={"types": types}))
    assert (error.http_status, error.param) == (400, "types")
    assert sandbox.client().v1.events.list(params={"types": types[:20]}).data == []
