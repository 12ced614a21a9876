"""The harness works: a session paid with the success card reaches the receiver signed."""

from tests.stripe_sandbox.harness import Receiver, SandboxServer, session_params


def test_paid_session_events_arrive_signed(sandbox: SandboxServer, receiver: Receiver) -> None:
    session = sandbox.client().v1.checkout.sessions.create(params=session_params())
    sandbox.control(f"checkout/sessions/{session.id}/pay", {"card": "4242424242424242"})
    receiver.wait_for(lambda r: "checkout.session.completed" in r.types())
    sandbox.wait_idle()
    assert receiver.bad_signatures == 0
    completed = next(
        r.event for r in receiver.received if r.event.type == "checkout.session.completed"
    )
    assert completed.data.object["id"] == session.id
    assert completed.data.object["payment_status"] == "paid"
