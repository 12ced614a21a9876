"""Authentication of the staff API (`/api/v1/staff/`): a staff token in
`Authorization: Bearer <token>`, or the Django session of a staff user (the admin's
login). Either way the user must be active and staff, then hold one of the operation's
Django permissions.

    no credentials, a bad or revoked token, an inactive token user -> 401 not_authenticated
    a user who is not staff, or lacks the permission                -> 403 permission_denied

Unsafe requests made with the session cookie need the CSRF token, like the rest of the
API (djangomart/api/csrf.py, applied to every operation before authentication). A token
client sends no cookies and needs none.

The authenticated user is `request.auth`; views must use it, not `request.user` (the
session's user, who is not the token's)."""

from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, User
from django.http import HttpRequest, JsonResponse
from ninja.security import APIKeyCookie, HttpBearer

from djangomart.accounts.services import (
    staff_token_find,
    staff_token_used,
    staff_user_allowed,
)
from djangomart.core.errors import DomainError

REALM = "DjangoMart staff API"


class NotAuthenticated(DomainError):
    """401 with `WWW-Authenticate: Bearer` (RFC 6750): which credentials are expected,
    and for a token that was presented, `error="invalid_token"`."""

    status = 401
    code = "not_authenticated"
    default_message = (
        "Authentication required: send a staff API token in `Authorization: Bearer <token>` "
        "or use the session of a staff user."
    )

    def __init__(self, message: str | None = None, *, invalid_token: bool = False) -> None:
        super().__init__(message)
        self.invalid_token = invalid_token

    def as_response(self) -> JsonResponse:
        response = super().as_response()
        challenge = f'Bearer realm="{REALM}"'
        if self.invalid_token:
            challenge += ', error="invalid_token"'
        response["WWW-Authenticate"] = challenge
        return response


class PermissionDenied(DomainError):
    status = 403
    code = "permission_denied"
    default_message = "You do not have permission to do this."


def _permitted(user: AbstractBaseUser, permissions: tuple[str, ...]) -> User:
    """The staff user, if they hold one of `permissions`; else PermissionDenied."""
    if not staff_user_allowed(user):
        raise PermissionDenied("The staff API is for active staff users only.")
    staff = cast(User, user)
    if permissions and not any(staff.has_perm(p) for p in permissions):
        raise PermissionDenied(
            "You do not have permission to do this: it needs "
            + " or ".join(f"`{p}`" for p in permissions)
            + "."
        )
    return staff


class StaffBearerAuth(HttpBearer):
    openapi_description = (
        "A staff API token (`dmst_...`, created with `manage.py staff_token create "
        "<username>`), acting as its staff user with that user's permissions."
    )

    def __init__(self, *permissions: str) -> None:
        self.permissions = permissions
        super().__init__()

    def __call__(self, request: HttpRequest) -> Any:
        # Not HttpBearer's: that one logs a non-Bearer header, credentials included.
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None  # no token: the session may still authenticate
        return self.authenticate(request, credentials.strip())

    def authenticate(self, request: HttpRequest, token: str) -> User:
        row = staff_token_find(token)
        if row is None:
            raise NotAuthenticated("The staff API token is not valid.", invalid_token=True)
        if row.revoked_at is not None:
            raise NotAuthenticated("The staff API token was revoked.", invalid_token=True)
        if not row.user.is_active:
            raise NotAuthenticated("The staff API token's user is inactive.", invalid_token=True)
        staff_token_used(row)
        request.staff_api_token = row  # type: ignore[attr-defined]
        return _permitted(row.user, self.permissions)


class StaffSessionAuth(APIKeyCookie):
    param_name = settings.SESSION_COOKIE_NAME
    openapi_description = (
        "The Django session of a staff user (the admin's login); unsafe requests also "
        "need the CSRF token in `X-CSRFToken` (GET /api/v1/csrf)."
    )

    def __init__(self, *permissions: str) -> None:
        self.permissions = permissions
        # CSRF is checked for every operation of the API, before authentication.
        super().__init__(csrf=False)

    def authenticate(self, request: HttpRequest, key: str | None) -> User | None:
        user = request.user
        if not user.is_authenticated:
            return None
        return _permitted(cast(AbstractBaseUser, user), self.permissions)


def staff_auth(*permissions: str) -> list[HttpBearer | APIKeyCookie]:
    """The `auth=` of a staff operation: a token, else the session; the user must hold
    one of `permissions`. Neither credential -> 401 (djangomart/api/errors.py)."""
    return [StaffBearerAuth(*permissions), StaffSessionAuth(*permissions)]


def staff_user(request: HttpRequest) -> User:
    """The user a staff operation acts as (set by staff_auth)."""
    return cast(User, request.auth)  # type: ignore[attr-defined]
