"""A disputed charge cannot be refunded at the sandbox, as at Stripe (`charge_disputed`),
unless the dispute was won, the inquiry closed or was prevented, or Stripe says the
charge is still refundable (`is_charge_refundable`)."""

from typing import Any

import pytest

from tests.stripe_sandbox.harness import ControlError, SandboxServer
from tests.stripe_sandbox.test_api import TOTAL, paid_session, refused


def dispute(sandbox: SandboxServer, charge_id: str, **body: Any) -> dict[str, Any]:
    return sandbox.control(f"charges/{charge_id}/dispute", body)  # type: ignore[no-any-return]


def test_refunding_a_charge_under_an_open_dispute_is_refused_and_changes_nothing(
    sandbox: SandboxServer,
) -> None:
    _, intent, charge = paid_session(sandbox)
    opened = dispute(sandbox, charge.id)
    client = sandbox.client()
    for params in ({"payment_intent": intent.id}, {"charge": charge.id, "amount": 100}):
        error = refused(lambda params=params: client.v1.refunds.create(params))
        assert (error.http_status, error.code) == (400, "charge_disputed")
        assert opened["id"] in str(error.user_message)
    sandbox.control(f"disputes/{opened['id']}/update", {"status": "under_review"})
    error = refused(lambda: client.v1.refunds.create({"payment_intent": intent.id}))
    assert error.code == "charge_disputed"
    assert client.v1.charges.retrieve(charge.id).amount_refunded == 0
    assert client.v1.refunds.list({"charge": charge.id}).data == []


def test_a_won_dispute_lets_the_charge_be_refunded_again(sandbox: SandboxServer) -> None:
    _, intent, charge = paid_session(sandbox)
    opened = dispute(sandbox, charge.id)
    sandbox.control(f"disputes/{opened['id']}/close", {"outcome": "won"})
    refund = sandbox.client().v1.refunds.create({"payment_intent": intent.id, "amount": 500})
    assert (refund.amount, refund.status) == (500, "succeeded")


def test_a_lost_dispute_keeps_the_charge_unrefundable(sandbox: SandboxServer) -> None:
    _, intent, charge = paid_session(sandbox)
    opened = dispute(sandbox, charge.id)
    sandbox.control(f"disputes/{opened['id']}/close", {"outcome": "lost"})
    error = refused(lambda: sandbox.client().v1.refunds.create({"payment_intent": intent.id}))
    assert error.code == "charge_disputed"


def test_a_dispute_that_leaves_the_charge_refundable_does_not_stop_a_refund(
    sandbox: SandboxServer,
) -> None:
    _, intent, charge = paid_session(sandbox)
    opened = dispute(sandbox, charge.id, is_charge_refundable=True)
    assert opened["is_charge_refundable"] is True
    refund = sandbox.client().v1.refunds.create({"payment_intent": intent.id})
    assert refund.amount == TOTAL


def test_is_charge_refundable_must_be_a_boolean(sandbox: SandboxServer) -> None:
    _, _, charge = paid_session(sandbox)
    with pytest.raises(ControlError) as caught:
        dispute(sandbox, charge.id, is_charge_refundable="yes")
    assert caught.value.status == 400
    assert caught.value.body["error"]["param"] == "is_charge_refundable"
