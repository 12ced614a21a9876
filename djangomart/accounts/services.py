"""Staff API tokens: created, revoked, and looked up when a request presents one
(docs/staff-api.md).

A token is `dmst_` followed by 43 URL-safe characters (32 random bytes): the prefix
makes a leaked token recognisable (secret scanners, logs) and tells it apart from any
other credential. Only its SHA-256 is stored: the token is random and long, so a plain
hash is enough (no salt or slow hash needed) and lets a request find its row with one
indexed lookup. The row also keeps the token's first characters (`prefix`) so that
staff can tell tokens apart without the secret."""

import hashlib
import hmac
import logging
import re
import secrets
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db.models import Q
from django.utils import timezone

from djangomart.accounts.models import StaffApiToken
from djangomart.core.errors import DomainError

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "dmst_"  # noqa: S105 (the public prefix, not a secret)
TOKEN_RANDOM_BYTES = 32
# The stored prefix: "dmst_" and 8 of the random characters (48 bits: enough to tell
# one's tokens apart, far too few to help guess one).
SHOWN_PREFIX_LENGTH = len(TOKEN_PREFIX) + 8
# token_urlsafe(32) is 43 characters of the URL-safe base64 alphabet.
TOKEN_PATTERN = re.compile(r"dmst_[A-Za-z0-9_-]{43}")
NAME_MAX_LENGTH = 100  # StaffApiToken.name
# last_used_at is written at most this often per token: it says "in use lately", and a
# write on every request would make every staff API call a database write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class StaffTokenRefused(DomainError):
    """A token for a user who may not hold one (inactive, not staff), or a bad name."""

    status = 422
    code = "staff_token_refused"


def staff_user_allowed(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    """Who may use the staff API (and hold a token): an active staff user. The one place
    for this rule: the session and the token authentication both ask it."""
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and getattr(user, "is_staff", False)
    )


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def staff_token_create(user: User, name: str = "") -> tuple[str, StaffApiToken]:
    """A new token for `user` (an active staff user), named `name` (what it is for, e.g.
    "support desk"). Returns the token, which is never stored or shown again, and its
    row. Raises StaffTokenRefused."""
    if not staff_user_allowed(user):
        state = "inactive" if not user.is_active else "not staff"
        raise StaffTokenRefused(
            f"User {user.get_username()!r} is {state}: only active staff users may hold a "
            "staff API token."
        )
    name = name.strip()
    if len(name) > NAME_MAX_LENGTH or "\x00" in name:
        raise StaffTokenRefused(f"A token's name has at most {NAME_MAX_LENGTH} characters.")
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_RANDOM_BYTES)
    row = StaffApiToken.objects.create(
        user=user, name=name, prefix=token[:SHOWN_PREFIX_LENGTH], key_hash=token_hash(token)
    )
    logger.info(
        "staff API token created",
        extra={"token_id": row.pk, "token_prefix": row.prefix, "user_id": user.pk},
    )
    return token, row


def staff_token_revoke(token: StaffApiToken) -> bool:
    """Revokes `token` from now on (its next request is refused). Returns False when it
    was already revoked (its revoked_at is kept: when it stopped working)."""
    now = timezone.now()
    revoked = bool(
        StaffApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now)
    )
    token.refresh_from_db(fields=["revoked_at"])
    if revoked:
        logger.info(
            "staff API token revoked",
            extra={"token_id": token.pk, "token_prefix": token.prefix, "user_id": token.user_id},
        )
    return revoked


def staff_token_find(token: str) -> StaffApiToken | None:
    """The row of a presented token (revoked or not, with its user), or None. Anything
    not shaped like a token is refused before any query; the row is found by the hash
    (an indexed lookup that learns nothing about the token from timing), and the hash
    compared once more in constant time."""
    if not TOKEN_PATTERN.fullmatch(token):
        return None
    digest = token_hash(token)
    row = StaffApiToken.objects.select_related("user").filter(key_hash=digest).first()
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return row


def staff_token_used(token: StaffApiToken) -> None:
    """Records that `token` was used now, at most once per LAST_USED_RESOLUTION: no
    query at all when the stored time is recent, and a conditional UPDATE otherwise, so
    that requests arriving together write once."""
    now = timezone.now()
    stale = now - LAST_USED_RESOLUTION
    if token.last_used_at is not None and token.last_used_at > stale:
        return
    StaffApiToken.objects.filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale), pk=token.pk
    ).update(last_used_at=now)
    token.last_used_at = now
