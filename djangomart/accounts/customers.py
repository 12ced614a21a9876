"""Who the customer of a request is (docs/accounts.md), the one place that decides it:

- the `app` client (mobile apps) sends allauth's session token in `X-Session-Token`;
- the `browser` client sends the session cookie (and, on unsafe requests, the CSRF
  token: djangomart/api/csrf.py).

A request that carries `X-Session-Token` is judged by that token alone: a token that is
unknown, expired or ended (logout, account deletion) is a 401 `session_expired`, never
a silent fall back to the cookie or to a guest, so an app notices at once that it must
log in again. A token whose session is not logged in yet (signup, before the email is
verified) is a guest's. Without the header, the session cookie's user is the customer (an
inactive or anonymous one is no customer).

Views read `request_customer(request)`; operations that need a customer declare
`auth=CUSTOMER_AUTH`, which puts both ways into the OpenAPI schema."""

from typing import Any, cast

from allauth.headless.contrib.ninja.security import XSessionTokenAuth
from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpRequest
from ninja.security import APIKeyCookie, APIKeyHeader

from djangomart.core.errors import DomainError

SESSION_TOKEN_HEADER = "X-Session-Token"  # noqa: S105 (a header's name)
_CACHE_ATTRIBUTE = "_djangomart_customer"


class _SessionToken(XSessionTokenAuth):  # type: ignore[misc]  # allauth is untyped
    # A token whose session is not logged in yet (signup waiting for the email's
    # verification) is a guest's, not an expired one: allauth answers AnonymousUser.
    allow_anonymous_users = True


_session_token = _SessionToken()


class SessionExpired(DomainError):
    status = 401
    code = "session_expired"
    default_message = (
        "The X-Session-Token is not valid (unknown, expired or ended): log in again through "
        "/_allauth/app/v1/auth/login."
    )


class CustomerRequired(DomainError):
    status = 401
    code = "not_authenticated"
    default_message = (
        "Log in first: send the session cookie (browser client) or the X-Session-Token "
        "header (app client) of a customer logged in through /_allauth/."
    )


def session_token_sent(request: HttpRequest) -> bool:
    return SESSION_TOKEN_HEADER in request.headers


def request_customer(request: HttpRequest) -> User | None:
    """The request's customer, or None for a guest; SessionExpired for a bad token."""
    cached = getattr(request, _CACHE_ATTRIBUTE, False)
    if cached is not False:
        return cast(User | None, cached)
    customer: User | None
    if session_token_sent(request):
        # allauth's own security class for django-ninja: the token's session, its user.
        user = _session_token(request)
        if user is None or (user.is_authenticated and not user.is_active):
            raise SessionExpired()
        customer = cast(User, user) if user.is_authenticated else None
    else:
        user = getattr(request, "user", None)
        customer = cast(User, user) if user is not None and user.is_authenticated else None
        if customer is not None and not customer.is_active:
            customer = None
    setattr(request, _CACHE_ATTRIBUTE, customer)
    return customer


def customer_required(request: HttpRequest) -> User:
    customer = request_customer(request)
    if customer is None:
        raise CustomerRequired()
    return customer


class CustomerTokenAuth(APIKeyHeader):
    """The app client: allauth's session token."""

    param_name = SESSION_TOKEN_HEADER
    openapi_description = (
        "The `app` client's session token from allauth (`/_allauth/app/v1/auth/login` "
        "answers it in `meta.session_token`)."
    )

    def __call__(self, request: HttpRequest) -> Any:
        if not session_token_sent(request):
            return None
        return request_customer(request)  # raises SessionExpired for a bad one

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        return request_customer(request)


class CustomerSessionAuth(APIKeyCookie):
    """The browser client: the session cookie (unsafe requests also send X-CSRFToken)."""

    param_name = settings.SESSION_COOKIE_NAME
    openapi_description = (
        "The `browser` client's session cookie, set by `/_allauth/browser/v1/auth/login`; "
        "unsafe requests also send the CSRF token in `X-CSRFToken`."
    )

    def __call__(self, request: HttpRequest) -> Any:
        # Runs second: a sent token was judged (and answered) by CustomerTokenAuth.
        return customer_required(request)

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        return request_customer(request)


CUSTOMER_AUTH = [CustomerTokenAuth(), CustomerSessionAuth()]
