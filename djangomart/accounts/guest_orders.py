"""A guest's orders join the account of whoever proves they own the guest's email
(docs/customers.md, "Guest orders").

The proof is allauth's email verification: when an address is confirmed (at signup, or
when a customer adds or changes an email), every guest order placed with that email,
case-insensitively, gets that customer. Never at signup itself: anyone can sign up with
someone else's email, but only its owner can read the verification email. The orders'
access tokens are untouched, so the guest's links keep working."""

import logging
from typing import Any

from allauth.account.models import EmailAddress
from django.contrib.auth.models import User

from djangomart.orders.models import Order

logger = logging.getLogger(__name__)


def guest_orders_attach(*, customer: User, email: str) -> int:
    """Gives `customer` every order without a customer whose email is `email` (any case);
    `email` must be one of theirs that is verified. Returns how many orders were attached.

    One UPDATE: it locks only guest orders, one at a time as it meets them, and holds no
    other lock that the order or payment services wait for, so it cannot deadlock with
    them; an order it waits for is re-checked (still a guest's?) once that lock is free."""
    attached = Order.objects.filter(customer__isnull=True, email__iexact=email).update(
        customer=customer
    )
    if attached:
        logger.info(
            "guest orders attached to a customer",
            extra={"user_id": customer.pk, "orders_attached": attached},
        )
    return attached


def on_email_confirmed(
    sender: Any, request: Any, email_address: EmailAddress, **kwargs: Any
) -> None:
    """allauth's `email_confirmed` signal: the address is verified now."""
    if not email_address.verified or email_address.user_id is None:
        return
    guest_orders_attach(customer=email_address.user, email=email_address.email)
