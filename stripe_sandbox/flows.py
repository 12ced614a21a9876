"""What happens to Stripe's objects, and which events fire, when a customer pays,
a session expires, money is refunded or a payment is disputed."""

import copy
from dataclasses import dataclass
from typing import Any

from stripe_sandbox import objects
from stripe_sandbox.errors import StripeError, invalid
from stripe_sandbox.params import Params
from stripe_sandbox.store import Store, StripeObject, new_id

MIN_EXPIRY = 30 * 60
MAX_EXPIRY = 24 * 60 * 60

# Stripe's minimum charge per currency, in minor units (a subset of Stripe's table,
# "Minimum and maximum charge amounts"); any other currency needs DEFAULT_MINIMUM_CHARGE.
MINIMUM_CHARGE = {
    "usd": 50, "aud": 50, "brl": 50, "cad": 50, "chf": 50, "eur": 50, "inr": 50,
    "nzd": 50, "sgd": 50, "gbp": 30, "jpy": 50, "aed": 200, "bgn": 100, "czk": 1500,
    "dkk": 250, "hkd": 400, "huf": 17500, "mxn": 1000, "myr": 200, "nok": 300,
    "pln": 200, "ron": 200, "sek": 300, "thb": 1000,
}  # fmt: skip
DEFAULT_MINIMUM_CHARGE = 50
# Amounts have at most 8 digits.
MAXIMUM_CHARGE = 99_999_999
# Stripe charges these in thousandths but needs the last digit to be 0.
THREE_DECIMAL_CURRENCIES = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})


@dataclass(frozen=True)
class TestCard:
    behaviour: str  # "succeed", "decline" or "3ds"
    brand: str = "visa"
    decline_code: str | None = None
    message: str | None = None


TEST_CARDS = {
    "4242424242424242": TestCard("succeed"),
    "4000000000000002": TestCard(
        "decline", decline_code="generic_decline", message="Your card was declined."
    ),
    "4000000000009995": TestCard(
        "decline", decline_code="insufficient_funds", message="Your card has insufficient funds."
    ),
    "4000002500003155": TestCard("3ds"),
}

DELAYED_METHOD = "us_bank_account"


@dataclass(frozen=True)
class Context:
    """Where a change came from, copied into its events' `request` field."""

    request_id: str | None = None
    idempotency_key: str | None = None


def _emit(store: Store, ctx: Context, event_type: str, obj: StripeObject, **kw: Any) -> None:
    store.emit(
        event_type, obj, request_id=ctx.request_id, idempotency_key=ctx.idempotency_key, **kw
    )


# -- Checkout Sessions ---------------------------------------------------------------


def session_create(store: Store, params: Params, *, url_base: str) -> StripeObject:
    now = store.now()
    params.text("mode", required=True, choices=("payment",))
    success_url = params.text("success_url", required=True, max_length=5000)
    cancel_url = params.text("cancel_url", max_length=5000)
    client_reference_id = params.text("client_reference_id", max_length=200)
    customer_email = params.text("customer_email", max_length=800)
    metadata = params.metadata()
    expires_at = params.integer("expires_at")
    if expires_at is None:
        expires_at = now + MAX_EXPIRY
    elif expires_at < now + MIN_EXPIRY:
        raise invalid(
            "The `expires_at` timestamp must be at least 30 minutes from Checkout "
            "Session creation.",
            param="expires_at",
        )
    elif expires_at > now + MAX_EXPIRY:
        raise invalid(
            "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.",
            param="expires_at",
        )
    intent_data = params.hash("payment_intent_data")
    intent_metadata: dict[str, str] = {}
    if intent_data is not None:
        intent_metadata = intent_data.metadata()
        intent_data.finish()
    items = _line_items(params.array("line_items", required=True), created=now)
    params.finish()
    currencies = {item["currency"] for item in items}
    if len(currencies) > 1:
        raise invalid("All line items must use the same currency.", param="line_items")
    currency = currencies.pop()
    amount_total = sum(item["amount_total"] for item in items)
    _amount_check(amount_total, currency)
    session = objects.checkout_session(
        created=now,
        expires_at=expires_at,
        currency=currency,
        amount_total=amount_total,
        metadata=metadata,
        client_reference_id=client_reference_id,
        customer_email=customer_email,
        success_url=success_url,
        cancel_url=cancel_url,
        url_base=url_base,
    )
    store.add(session)
    store.private[session["id"]] = {"line_items": items, "intent_metadata": intent_metadata}
    return session


def _amount_check(amount: int, currency: str) -> None:
    """Stripe's rules for what one payment may be: the session's total becomes the amount
    of its PaymentIntent."""
    minimum = MINIMUM_CHARGE.get(currency, DEFAULT_MINIMUM_CHARGE)
    if amount < minimum:
        raise invalid(
            f"The Checkout Session's total amount due must add up to at least {minimum} "
            f"(in the smallest unit of {currency}).",
            code="amount_too_small",
        )
    if amount > MAXIMUM_CHARGE:
        raise invalid(
            f"The Checkout Session's total amount due must be no more than {MAXIMUM_CHARGE} "
            f"(in the smallest unit of {currency}).",
            code="amount_too_large",
        )


def _line_items(entries: list[Params], *, created: int) -> list[StripeObject]:
    if not entries:
        raise invalid("line_items must contain at least one item.", param="line_items")
    items = []
    for entry in entries:
        quantity = entry.required_integer("quantity", minimum=1, maximum=999_999)
        price_data = entry.required_hash("price_data")
        currency = price_data.required_text("currency", max_length=3)
        if len(currency) != 3 or not currency.isalpha():
            raise invalid(f"Invalid currency: {currency}", param=price_data.name("currency"))
        unit_amount = price_data.required_integer("unit_amount", minimum=0, maximum=MAXIMUM_CHARGE)
        if currency.lower() in THREE_DECIMAL_CURRENCIES and unit_amount % 10:
            raise invalid(
                f"Amounts in {currency.lower()} must be a multiple of 10 (the last of its "
                "three decimals must be 0).",
                param=price_data.name("unit_amount"),
                code="invalid_charge_amount",
            )
        product_data = price_data.required_hash("product_data")
        name = product_data.required_text("name", max_length=250)
        product_data.text("description")
        product_data.metadata()
        product_data.finish()
        price_data.finish()
        entry.finish()
        items.append(
            objects.line_item(
                name=name,
                unit_amount=unit_amount,
                quantity=quantity,
                currency=currency.lower(),
                created=created,
            )
        )
    return items


def session_expire(store: Store, session: StripeObject, ctx: Context) -> StripeObject:
    if session["status"] != "open":
        raise invalid(
            f'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout '
            f'Session has a status of "{session["status"]}".'
        )
    intent = _intent_of(store, session)
    if intent is not None and intent["status"] in ("requires_payment_method", "requires_action"):
        intent.update(
            status="canceled",
            canceled_at=store.now(),
            cancellation_reason="abandoned",
            next_action=None,
        )
        _emit(store, ctx, "payment_intent.canceled", intent)
    session["status"] = "expired"
    session["url"] = None
    _emit(store, ctx, "checkout.session.expired", session)
    return session


def sessions_expire_due(store: Store) -> list[StripeObject]:
    """Expires every open session whose `expires_at` has passed on the sandbox clock."""
    now = store.now()
    due = [
        s for s in store.all("checkout.session") if s["status"] == "open" and s["expires_at"] <= now
    ]
    for session in reversed(due):  # oldest first
        session_expire(store, session, Context())
    return due


def _require_open(session: StripeObject) -> None:
    if session["status"] != "open":
        raise invalid(
            f"This Checkout Session is {session['status']}; it cannot be paid.",
            code="checkout_session_not_open",
        )


def _intent_of(store: Store, session: StripeObject) -> StripeObject | None:
    return (
        store.get("payment_intent", session["payment_intent"])
        if session["payment_intent"]
        else None
    )


def _ensure_intent(store: Store, session: StripeObject, ctx: Context) -> StripeObject:
    intent = _intent_of(store, session)
    if intent is None:
        intent = objects.payment_intent(
            amount=session["amount_total"],
            currency=session["currency"],
            metadata=dict(store.private[session["id"]]["intent_metadata"]),
            created=store.now(),
            receipt_email=session["customer_email"],
        )
        store.add(intent)
        session["payment_intent"] = intent["id"]
        _emit(store, ctx, "payment_intent.created", intent)
    return intent


def session_pay(
    store: Store,
    session: StripeObject,
    ctx: Context,
    *,
    card: str | None = None,
    delayed: bool = False,
    email: str | None = None,
) -> str:
    """One payment attempt on the hosted page. Returns the outcome: "succeeded",
    "declined", "requires_action" (3-D Secure) or "processing" (delayed method)."""
    _require_open(session)
    if email:
        store.private[session["id"]]["email"] = email
    if delayed:
        intent = _ensure_intent(store, session, ctx)
        _require_payable(intent)
        intent.update(
            status="processing",
            # Stripe's `processing` hash describes card payments only; a bank debit
            # that is processing has none.
            processing=None,
            next_action=None,
            last_payment_error=None,
            payment_method=new_id("pm"),
        )
        _emit(store, ctx, "payment_intent.processing", intent)
        _complete_session(store, session, ctx, payment_status="unpaid")
        return "processing"
    test_card = TEST_CARDS.get((card or "").replace(" ", ""))
    if test_card is None:
        raise StripeError(
            402,
            "Your card number is incorrect.",
            type="card_error",
            code="incorrect_number",
            param="card",
        )
    intent = _ensure_intent(store, session, ctx)
    _require_payable(intent)
    last4 = (card or "").replace(" ", "")[-4:]
    store.private[session["id"]]["card"] = last4
    if test_card.behaviour == "succeed":
        _succeed(store, session, intent, ctx, method="card", last4=last4)
        return "succeeded"
    if test_card.behaviour == "3ds":
        intent.update(
            status="requires_action",
            next_action={
                "type": "use_stripe_sdk",
                "use_stripe_sdk": {"type": "three_d_secure_redirect"},
            },
        )
        _emit(store, ctx, "payment_intent.requires_action", intent)
        return "requires_action"
    _decline(
        store,
        intent,
        ctx,
        last4=last4,
        code="card_declined",
        decline_code=test_card.decline_code,
        message=test_card.message or "",
    )
    return "declined"


def _require_payable(intent: StripeObject) -> None:
    if intent["status"] not in ("requires_payment_method", "requires_action"):
        raise invalid(
            f"This PaymentIntent's status is {intent['status']}; it cannot be paid again.",
            code="payment_intent_unexpected_state",
        )


def session_authenticate(
    store: Store, session: StripeObject, ctx: Context, *, approve: bool
) -> str:
    """Completes or fails the 3-D Secure step of a payment attempt."""
    _require_open(session)
    intent = _intent_of(store, session)
    if intent is None or intent["status"] != "requires_action":
        raise invalid(
            "This Checkout Session has no payment waiting for authentication.",
            code="payment_intent_unexpected_state",
        )
    last4 = store.private[session["id"]].get("card", "3155")
    if approve:
        _succeed(store, session, intent, ctx, method="card", last4=last4)
        return "succeeded"
    _decline(
        store,
        intent,
        ctx,
        last4=last4,
        code="payment_intent_authentication_failure",
        decline_code=None,
        message="The provided PaymentMethod has failed authentication.",
    )
    return "declined"


def session_settle_delayed(
    store: Store, session: StripeObject, ctx: Context, *, succeeded: bool
) -> str:
    """The bank's answer for a delayed payment method, days later in real life."""
    intent = _intent_of(store, session)
    if session["status"] != "complete" or intent is None or intent["status"] != "processing":
        raise invalid(
            "This Checkout Session has no delayed payment in progress.",
            code="payment_intent_unexpected_state",
        )
    if succeeded:
        _succeed(store, session, intent, ctx, method=DELAYED_METHOD, last4="6789")
        return "succeeded"
    failed = objects.charge(
        intent=intent,
        created=store.now(),
        status="failed",
        method=DELAYED_METHOD,
        last4="6789",
        brand="",
        failure_code="insufficient_funds",
        failure_message="The account has insufficient funds.",
    )
    store.add(failed)
    # As on Stripe, the failed method leaves the PaymentIntent (which is ready for
    # another one) and is named by the error; the session stays complete/unpaid.
    intent.update(
        status="requires_payment_method",
        processing=None,
        latest_charge=failed["id"],
        payment_method=None,
        last_payment_error={
            "type": "card_error",
            "code": "insufficient_funds",
            "message": "The account has insufficient funds.",
            "charge": failed["id"],
            "payment_method": {
                "id": intent["payment_method"],
                "object": "payment_method",
                "type": DELAYED_METHOD,
            },
        },
    )
    _emit(store, ctx, "charge.failed", failed)
    _emit(store, ctx, "payment_intent.payment_failed", intent)
    _emit(store, ctx, "checkout.session.async_payment_failed", session)
    return "failed"


def _succeed(
    store: Store,
    session: StripeObject,
    intent: StripeObject,
    ctx: Context,
    *,
    method: str,
    last4: str,
) -> None:
    paid = objects.charge(
        intent=intent,
        created=store.now(),
        status="succeeded",
        method=method,
        last4=last4,
        brand="visa" if method == "card" else "",
        billing_email=_email(store, session),
    )
    store.add(paid)
    was_processing = intent["status"] == "processing"
    intent.update(
        status="succeeded",
        amount_received=intent["amount"],
        latest_charge=paid["id"],
        next_action=None,
        processing=None,
        last_payment_error=None,
        payment_method=paid["payment_method"],
    )
    _emit(store, ctx, "charge.succeeded", paid)
    _emit(store, ctx, "payment_intent.succeeded", intent)
    if was_processing:
        session["payment_status"] = "paid"
        _emit(store, ctx, "checkout.session.async_payment_succeeded", session)
    else:
        _complete_session(store, session, ctx, payment_status="paid")


def _decline(
    store: Store,
    intent: StripeObject,
    ctx: Context,
    *,
    last4: str,
    code: str,
    decline_code: str | None,
    message: str,
) -> None:
    failed = objects.charge(
        intent=intent,
        created=store.now(),
        status="failed",
        method="card",
        last4=last4,
        brand="visa",
        failure_code=code,
        failure_message=message,
    )
    store.add(failed)
    error = {"type": "card_error", "code": code, "message": message, "charge": failed["id"]}
    if decline_code:
        error["decline_code"] = decline_code
    intent.update(
        status="requires_payment_method",
        next_action=None,
        last_payment_error=error,
        latest_charge=failed["id"],
    )
    _emit(store, ctx, "charge.failed", failed)
    _emit(store, ctx, "payment_intent.payment_failed", intent)


def _email(store: Store, session: StripeObject) -> str | None:
    email = store.private[session["id"]].get("email") or session["customer_email"]
    return str(email) if email else None


def _complete_session(
    store: Store, session: StripeObject, ctx: Context, *, payment_status: str
) -> None:
    session.update(
        status="complete",
        payment_status=payment_status,
        url=None,
        customer_details=objects.customer_details(_email(store, session)),
    )
    _emit(store, ctx, "checkout.session.completed", session)


# -- Refunds -------------------------------------------------------------------------

REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")


def refund_create(store: Store, params: Params, ctx: Context, *, mode: str) -> StripeObject:
    intent_id = params.text("payment_intent")
    charge_id = params.text("charge")
    amount = params.integer("amount", minimum=1)
    reason = params.text("reason", choices=REFUND_REASONS)
    metadata = params.metadata()
    params.finish()
    if intent_id and charge_id:
        raise invalid("You cannot pass both `charge` and `payment_intent`.", param="charge")
    if charge_id:
        paid = store.get("charge", charge_id)
        if paid is None:
            raise invalid(f"No such charge: '{charge_id}'", param="charge", code="resource_missing")
    elif intent_id:
        intent = store.get("payment_intent", intent_id)
        if intent is None:
            raise invalid(
                f"No such payment_intent: '{intent_id}'",
                param="payment_intent",
                code="resource_missing",
            )
        paid = store.get("charge", intent["latest_charge"] or "")
        if paid is None or intent["status"] != "succeeded":
            raise invalid(
                f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
                param="payment_intent",
            )
    else:
        raise invalid(
            "One of the following params should be provided for this request: "
            "payment_intent or charge."
        )
    if paid["status"] != "succeeded":
        raise invalid(
            f"Charge {paid['id']} has not succeeded; it cannot be refunded.", param="charge"
        )
    blocking = _dispute_blocking_refund(store, paid)
    if blocking is not None:
        raise invalid(
            f"Charge {paid['id']} has been disputed ({blocking['id']}, {blocking['status']}) "
            "and cannot be refunded.",
            code="charge_disputed",
        )
    remaining = paid["amount"] - paid["amount_refunded"]
    if remaining <= 0:
        raise invalid(
            f"Charge {paid['id']} has already been refunded.", code="charge_already_refunded"
        )
    if amount is None:
        amount = remaining
    elif amount > remaining:
        raise invalid(
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
            param="amount",
            code="amount_too_large",
        )
    created = objects.refund(
        charge_obj=paid,
        amount=amount,
        reason=reason,
        metadata=metadata,
        status="pending" if mode == "pending" else "succeeded",
        created=store.now(),
    )
    store.add(created)
    paid["amount_refunded"] += amount
    paid["refunded"] = paid["amount_refunded"] == paid["amount"]
    paid["refunds"]["data"].insert(0, copy.deepcopy(created))
    _emit(store, ctx, "refund.created", created)
    _emit(store, ctx, "charge.refunded", paid)
    return created


# A dispute that no longer stops a refund: won, an inquiry closed without becoming a
# chargeback, or one the card network prevented. Any other (open, or lost: the money is
# already gone) does, unless Stripe says the charge is still refundable (some inquiries).
DISPUTE_ALLOWS_REFUND = ("won", "warning_closed", "prevented")


def _dispute_blocking_refund(store: Store, paid: StripeObject) -> StripeObject | None:
    if not paid["disputed"]:
        return None
    for dispute in store.all("dispute"):
        if (
            dispute["charge"] == paid["id"]
            and dispute["status"] not in DISPUTE_ALLOWS_REFUND
            and not dispute["is_charge_refundable"]
        ):
            return dispute
    return None


def refund_settle(
    store: Store, refund: StripeObject, ctx: Context, *, succeeded: bool
) -> StripeObject:
    """A pending refund succeeds, or any refund that has not failed yet fails."""
    allowed = ("pending",) if succeeded else ("pending", "succeeded")
    if refund["status"] not in allowed:
        raise invalid(f"This refund's status is {refund['status']}.")
    previous = {"status": refund["status"]}
    paid = store.objects[refund["charge"]]
    if succeeded:
        refund.update(status="succeeded", balance_transaction=new_id("txn"))
    else:
        refund.update(
            status="failed",
            failure_reason="expired_or_canceled_card",
            failure_balance_transaction=new_id("txn"),
        )
        paid["amount_refunded"] -= refund["amount"]
        paid["refunded"] = False
    paid["refunds"]["data"] = [
        copy.deepcopy(refund) if r["id"] == refund["id"] else r for r in paid["refunds"]["data"]
    ]
    if not succeeded:
        _emit(store, ctx, "refund.failed", refund)
    _emit(store, ctx, "refund.updated", refund, previous_attributes=previous)
    return refund


# -- Disputes ------------------------------------------------------------------------

DISPUTE_REASONS = (
    "fraudulent",
    "product_not_received",
    "product_unacceptable",
    "duplicate",
    "subscription_canceled",
    "credit_not_processed",
    "general",
    "unrecognized",
)


def dispute_open(
    store: Store,
    paid: StripeObject,
    ctx: Context,
    *,
    amount: int | None,
    reason: str,
    is_charge_refundable: bool = False,
) -> StripeObject:
    if paid["status"] != "succeeded":
        raise invalid("Only a succeeded charge can be disputed.")
    if paid["disputed"]:
        raise invalid(f"Charge {paid['id']} is already disputed.")
    amount = paid["amount"] if amount is None else amount
    if not 0 < amount <= paid["amount"]:
        raise invalid(
            "The disputed amount must be between 1 and the charge amount.", param="amount"
        )
    opened = objects.dispute(charge_obj=paid, amount=amount, reason=reason, created=store.now())
    opened["is_charge_refundable"] = is_charge_refundable
    store.add(opened)
    paid["disputed"] = True
    _emit(store, ctx, "charge.dispute.created", opened)
    opened["balance_transactions"].append(
        objects.balance_transaction(
            amount=-amount, currency=paid["currency"], created=store.now(), kind="dispute"
        )
    )
    _emit(store, ctx, "charge.dispute.funds_withdrawn", opened)
    return opened


def dispute_update(
    store: Store, opened: StripeObject, ctx: Context, *, status: str, evidence: dict[str, str]
) -> StripeObject:
    if opened["status"] in ("won", "lost"):
        raise invalid("This dispute is closed.")
    unknown = set(evidence) - set(opened["evidence"])
    if unknown:
        raise invalid(
            f"Received unknown parameter: evidence[{sorted(unknown)[0]}]", param="evidence"
        )
    previous: dict[str, Any] = {"status": opened["status"]}
    if evidence:
        previous["evidence"] = {key: opened["evidence"][key] for key in evidence}
        opened["evidence"].update(evidence)
        opened["evidence_details"]["has_evidence"] = True
        opened["evidence_details"]["submission_count"] += 1
    opened["status"] = status
    _emit(store, ctx, "charge.dispute.updated", opened, previous_attributes=previous)
    return opened


def dispute_close(store: Store, opened: StripeObject, ctx: Context, *, won: bool) -> StripeObject:
    if opened["status"] in ("won", "lost"):
        raise invalid("This dispute is already closed.")
    previous = {"status": opened["status"]}
    opened["status"] = "won" if won else "lost"
    _emit(store, ctx, "charge.dispute.closed", opened, previous_attributes=previous)
    if won:
        opened["balance_transactions"].append(
            objects.balance_transaction(
                amount=opened["amount"],
                currency=opened["currency"],
                created=store.now(),
                kind="dispute_reversal",
            )
        )
        _emit(store, ctx, "charge.dispute.funds_reinstated", opened)
    return opened
