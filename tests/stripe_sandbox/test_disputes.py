"""The sandbox's disputes beyond the basic chargeback (tests/stripe_sandbox/test_flows.py):
inquiries (`warning_*`), which leave the charge refundable and close as `warning_closed`
or escalate to a chargeback, and the rules that keep a dispute's life one-way. Every
event reaches a receiver that verifies its signature with the SDK."""

from typing import Any

import pytest

from tests.stripe_sandbox.harness import ControlError, Receiver, SandboxServer
from tests.stripe_sandbox.test_flows import PAID_EVENTS, Shop, objects_of, only_object, types_after


@pytest.fixture
def shop(sandbox: SandboxServer, receiver: Receiver) -> Shop:
    return Shop(sandbox, receiver, sandbox.client())


def open_dispute(shop: Shop, **body: Any) -> tuple[dict[str, Any], str]:
    """A dispute on a paid charge (an inquiry with inquiry=True), and the charge's id."""
    _, intent = shop.paid_session()
    charge_id = intent["latest_charge"]
    return shop.sandbox.control(f"charges/{charge_id}/dispute", body), charge_id


def refused(shop: Shop, path: str, body: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ControlError) as error:
        shop.sandbox.control(path, body)
    assert error.value.status == 400
    return error.value.body["error"]  # type: ignore[no-any-return]


def test_an_inquiry_opens_as_warning_needs_response_refundable_and_takes_no_money(
    shop: Shop,
) -> None:
    dispute, charge_id = open_dispute(shop, inquiry=True, reason="general")
    assert types_after(shop.emitted(), len(PAID_EVENTS)) == ["charge.dispute.created"]
    created = only_object(shop.delivered(), "charge.dispute.created")
    assert (created["id"], created["status"], created["is_charge_refundable"]) == (
        dispute["id"],
        "warning_needs_response",
        True,
    )
    assert created["payment_method_details"]["card"]["case_type"] == "inquiry"
    assert created["balance_transactions"] == []
    assert created["evidence_details"]["due_by"] > created["created"]
    assert shop.client.v1.charges.retrieve(charge_id).disputed is True
    fetched = shop.client.v1.disputes.retrieve(dispute["id"])
    assert (fetched.status, fetched.is_charge_refundable) == ("warning_needs_response", True)


def test_a_chargeback_is_not_refundable(shop: Shop) -> None:
    dispute, _ = open_dispute(shop)
    assert (dispute["status"], dispute["is_charge_refundable"]) == ("needs_response", False)


def test_an_answered_inquiry_is_warning_under_review_and_closes_as_warning_closed(
    shop: Shop,
) -> None:
    dispute, _ = open_dispute(shop, inquiry=True)
    evidence = {"uncategorized_text": "Tracking number 1Z999."}
    shop.sandbox.control(f"disputes/{dispute['id']}/update", {"evidence": evidence})
    closed = shop.sandbox.control(f"disputes/{dispute['id']}/close", {"outcome": "warning_closed"})
    assert closed["status"] == "warning_closed"
    assert types_after(shop.emitted(), len(PAID_EVENTS)) == [
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
    ]
    events = shop.delivered()
    updated = only_object(events, "charge.dispute.updated")
    assert (updated["status"], updated["is_charge_refundable"]) == ("warning_under_review", True)
    assert only_object(events, "charge.dispute.closed")["status"] == "warning_closed"
    assert objects_of(events, "charge.dispute.funds_withdrawn") == []


def test_an_inquiry_escalated_to_a_chargeback_withdraws_the_funds_and_is_no_longer_refundable(
    shop: Shop,
) -> None:
    dispute, _ = open_dispute(shop, inquiry=True, amount=1500)
    shop.sandbox.control(f"disputes/{dispute['id']}/update", {"status": "needs_response"})
    assert types_after(shop.emitted(), len(PAID_EVENTS)) == [
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.funds_withdrawn",
    ]
    events = shop.delivered()
    updated = next(e for e in events if e["type"] == "charge.dispute.updated")
    assert updated["data"]["object"]["status"] == "needs_response"
    assert updated["data"]["object"]["is_charge_refundable"] is False
    assert updated["data"]["previous_attributes"] == {
        "status": "warning_needs_response",
        "is_charge_refundable": True,
    }
    withdrawn = only_object(events, "charge.dispute.funds_withdrawn")
    assert [t["amount"] for t in withdrawn["balance_transactions"]] == [-1500]
    assert withdrawn["payment_method_details"]["card"]["case_type"] == "chargeback"
    # Now a chargeback: it closes won or lost, never warning_closed.
    error = refused(shop, f"disputes/{dispute['id']}/close", {"outcome": "warning_closed"})
    assert error["param"] == "outcome"
    assert shop.sandbox.control(f"disputes/{dispute['id']}/close", {"outcome": "lost"})[
        "status"
    ] == ("lost")


@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_an_inquiry_cannot_close_won_or_lost(shop: Shop, outcome: str) -> None:
    dispute, _ = open_dispute(shop, inquiry=True)
    assert refused(shop, f"disputes/{dispute['id']}/close", {"outcome": outcome})["param"] == (
        "outcome"
    )
    assert shop.client.v1.disputes.retrieve(dispute["id"]).status == "warning_needs_response"


def test_a_chargeback_cannot_become_an_inquiry_again(shop: Shop) -> None:
    dispute, _ = open_dispute(shop)
    body = {"status": "warning_under_review"}
    assert refused(shop, f"disputes/{dispute['id']}/update", body)["param"] == "status"
    assert shop.client.v1.disputes.retrieve(dispute["id"]).status == "needs_response"


def test_a_closed_inquiry_cannot_be_updated_or_closed_again(shop: Shop) -> None:
    dispute, _ = open_dispute(shop, inquiry=True)
    shop.sandbox.control(f"disputes/{dispute['id']}/close", {"outcome": "warning_closed"})
    refused(shop, f"disputes/{dispute['id']}/update", {"status": "needs_response"})
    refused(shop, f"disputes/{dispute['id']}/close", {"outcome": "warning_closed"})
    assert len(objects_of(shop.delivered(), "charge.dispute.closed")) == 1


@pytest.mark.parametrize(
    ("body", "param"),
    [({"inquiry": "yes"}, "inquiry"), ({"amount": True}, "amount"), ({"amount": "5"}, "amount")],
)
def test_a_bad_dispute_body_is_refused_and_opens_nothing(
    shop: Shop, body: dict[str, Any], param: str
) -> None:
    _, intent = shop.paid_session()
    charge_id = intent["latest_charge"]
    assert refused(shop, f"charges/{charge_id}/dispute", body)["param"] == param
    assert shop.client.v1.charges.retrieve(charge_id).disputed is False
