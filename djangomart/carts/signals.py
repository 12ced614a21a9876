"""The guest cart joins the customer's cart when the guest logs in (docs/carts.md,
"Merge at login")."""

import logging
from typing import Any

from django.contrib.auth.models import User
from django.http import HttpRequest

from djangomart.carts.services import cart_merge
from djangomart.core.errors import DomainError

logger = logging.getLogger(__name__)

CART_TOKEN_HEADER = "X-Cart-Token"  # noqa: S105 (a header's name)


def on_user_logged_in(sender: Any, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    """allauth's `user_logged_in`: a login, or the email verification that logs in after
    signup. The request's X-Cart-Token names the guest cart; a bad or missing one changes
    nothing, and nothing here may fail the login."""
    token = request.headers.get(CART_TOKEN_HEADER) if request is not None else None
    if not token or not token.isprintable() or len(token) > 128:
        return
    guest_cart_merge(token=token, customer=user)


def guest_cart_merge(*, token: str, customer: User) -> None:
    """cart_merge at login, for every way a client names its guest cart (this header,
    the storefront's session): a refusal is logged, never a failed login."""
    try:
        merged = cart_merge(token=token, customer=customer)
    except DomainError as exc:  # Stripe unreachable to cancel a pending order, ...
        logger.warning(
            "guest cart not merged at login", extra={"user_id": customer.pk, "code": exc.code}
        )
        return
    if merged is not None:
        logger.info(
            "guest cart merged at login",
            extra={"user_id": customer.pk, "cart_id": str(merged.pk)},
        )
