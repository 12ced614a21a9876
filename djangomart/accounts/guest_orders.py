"""A guest's orders join the account of whoever proves they own the guest's email
(docs/customers.md, "Guest orders").

The proof is allauth's email verification: when an address is confirmed (at signup, or
when a customer adds or changes an email), every guest order placed with that email
(ASCII letters in any case) gets that customer. Never at signup itself: anyone can sign up with
someone else's email, but only its owner can read the verification email. The orders'
access tokens are untouched, so the guest's links keep working."""

import logging
import string
from typing import Any

from allauth.account.models import EmailAddress
from django.contrib.auth.models import User

from djangomart.orders.models import Order

logger = logging.getLogger(__name__)

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _ascii_lower(email: str) -> str:
    return email.translate(_ASCII_LOWER)


def guest_orders_attach(*, customer: User, email: str) -> int:
    """Gives `customer` every order without a customer whose email is `email` (any case);
    `email` must be one of theirs that is verified. Returns how many orders were attached.

    One UPDATE (after a plain read of the candidates): it locks only guest orders, one
    at a time as it meets them, and holds no other lock that the order or payment
    services wait for, so it cannot deadlock with them; an order it waits for is
    re-checked (still a guest's?) once that lock is free."""
    # "Any case" is ASCII's only: PostgreSQL's UPPER() behind `iexact` also folds letters
    # such as the dotless i (U+0131) onto `I`, so that verifying `joe@ma\u0131l.example`
    # (another domain, another mailbox) would bring joe@mail.example's orders. `iexact`
    # finds the candidates (a superset), the exact rule picks among them.
    wanted = _ascii_lower(email)
    candidates = [
        pk
        for pk, order_email in Order.objects.filter(
            customer__isnull=True, email__iexact=email
        ).values_list("pk", "email")
        if _ascii_lower(order_email) == wanted
    ]
    attached = Order.objects.filter(pk__in=candidates, customer__isnull=True).update(
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
