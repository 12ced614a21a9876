"""A customer deletes their own account (`DELETE /api/v1/me`, docs/customers.md).

The user row stays, anonymized and inactive, because orders point at it and must keep
their lines and money facts for accounting (tax records, refunds and disputes that may
still arrive from Stripe). Everything that identifies the person is erased: the user's
name and email, their allauth email addresses (so that the email can sign up again),
saved addresses and carts, the personal fields of each order's email and shipping
snapshot, the recipient and text of the emails sent about those orders and the address
in the payloads of their outbound webhooks. Every way in ends at once: login sessions
(cookie and app token), order access tokens and staff API tokens."""

import logging
from importlib import import_module
from typing import Any

from allauth.account.models import EmailAddress
from allauth.usersessions.models import UserSession
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest

from djangomart.accounts.customers import SESSION_TOKEN_HEADER
from djangomart.accounts.models import Address, StaffApiToken
from djangomart.accounts.services import staff_token_revoke
from djangomart.carts.models import Cart
from djangomart.carts.services import carts_lock
from djangomart.core.errors import DomainError
from djangomart.core.ratelimit import rate_limit_take
from djangomart.notify.services import outbox_addresses_erase
from djangomart.orders.locks import orders_lock
from djangomart.orders.models import Order, OrderEvent, new_access_token
from djangomart.orders.services import order_note

logger = logging.getLogger(__name__)

REAUTHENTICATE_RATE = "10/m"
PLACEHOLDER_DOMAIN = "deleted.invalid"  # RFC 2606: never a real mailbox
ERASED = "[erased]"
# Kept in an order's shipping snapshot: the country decides the tax the order was charged
# and is no personal data on its own.
SNAPSHOT_KEPT_FIELDS = frozenset({"country"})
TIMELINE_MESSAGE = "The customer deleted their account; personal data erased."


class ReauthenticationFailed(DomainError):
    status = 403
    code = "reauthentication_failed"
    default_message = "The password is wrong or missing: nothing was deleted."


class StaffAccount(DomainError):
    status = 403
    code = "staff_account"
    default_message = (
        "Staff accounts are not deleted through the storefront API: they are managed in the admin."
    )


def placeholder_email(user_id: int) -> str:
    return f"deleted-{user_id}@{PLACEHOLDER_DOMAIN}"


def snapshot_erased(snapshot: dict[str, Any]) -> dict[str, Any]:
    """An order's shipping snapshot without its personal fields: every field but the
    kept ones becomes ERASED, or stays empty when it was empty (so that required fields
    stay non-empty and optional ones do not gain a value)."""
    return {
        key: value if key in SNAPSHOT_KEPT_FIELDS else (ERASED if value else value)
        for key, value in snapshot.items()
    }


def account_delete(*, request: HttpRequest, customer: User, password: str) -> None:
    """Deletes `customer`'s account after checking their password (limited to
    REAUTHENTICATE_RATE tries per customer). Raises StaffAccount for staff,
    ReauthenticationFailed for a wrong or missing password (nothing changes), RateLimited."""
    if customer.is_staff or customer.is_superuser:
        raise StaffAccount()
    rate_limit_take("reauthenticate", REAUTHENTICATE_RATE, request, customer.pk)
    if not password or not customer.check_password(password):
        raise ReauthenticationFailed()
    session_keys = _request_session_keys(request)
    _account_erase(user_id=customer.pk, session_keys=session_keys)
    # The answering request's own session is gone from the database; flushing it too
    # keeps this response from writing it back (SessionMiddleware saves a modified one).
    if hasattr(request, "session"):
        request.session.flush()


def _request_session_keys(request: HttpRequest) -> set[str]:
    """The sessions this request came with: the cookie's and the app token's (allauth's
    session token is its session's key)."""
    keys = set()
    session = getattr(request, "session", None)
    if session is not None and session.session_key:
        keys.add(session.session_key)
    token = request.headers.get(SESSION_TOKEN_HEADER)
    if token:
        keys.add(token)
    return keys


@transaction.atomic
def _account_erase(*, user_id: int, session_keys: set[str]) -> None:
    # The user row first (as the address book does), so that two deletions, or a
    # deletion and an address edit, run one after the other; then carts, then orders
    # (the global lock order). A second deletion finds the account gone and stops.
    user = User.objects.select_for_update().get(pk=user_id)
    if not user.is_active:
        return
    placeholder = placeholder_email(user.pk)

    carts = carts_lock(Cart.objects.filter(customer=user).values_list("pk", flat=True))
    Cart.objects.filter(pk__in=list(carts)).delete()
    Address.objects.filter(customer=user).delete()
    EmailAddress.objects.filter(user=user).delete()

    orders = orders_lock(Order.objects.filter(customer=user).values_list("pk", flat=True))
    for order in orders.values():
        order.email = placeholder
        if isinstance(order.shipping_address, dict):
            order.shipping_address = snapshot_erased(order.shipping_address)
        # A guest-style link to the order (its access token) ends with the account.
        order.access_token = new_access_token()
        order.save(update_fields=["email", "shipping_address", "access_token", "updated_at"])
        order_note(order, OrderEvent.Kind.NOTE, TIMELINE_MESSAGE)
    # Imported here: the emails import the order API's representation, which imports
    # the accounts.
    from djangomart.notify.emails.services import notifications_erase_for_orders

    notifications_erase_for_orders(list(orders))
    outbox_addresses_erase(list(orders))

    # Known sessions are deleted outright; any other one dies at its next use, because
    # the password (hence Django's session auth hash) changes and the user is inactive.
    for user_session in UserSession.objects.filter(user=user):
        session_keys.discard(user_session.session_key)
        user_session.end()
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    for key in session_keys:
        store.delete(key)
    for token in StaffApiToken.objects.filter(user=user, revoked_at__isnull=True):
        staff_token_revoke(token)

    user.username = placeholder
    user.email = placeholder
    user.first_name = ""
    user.last_name = ""
    user.set_unusable_password()
    user.is_active = False
    user.save()
    logger.info(
        "customer account deleted",
        extra={"user_id": user.pk, "orders_anonymized": len(orders)},
    )
