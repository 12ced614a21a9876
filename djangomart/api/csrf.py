"""CSRF for the API: a request authenticated by the session cookie is a request a hostile
page can make the browser send (a `text/plain` form POST needs no CORS preflight), so
every unsafe one must carry Django's CSRF token. A client without a session (a guest, a
token client) proves nothing by its cookies and needs no token."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja.utils import check_csrf

from djangomart.accounts.customers import session_token_sent
from djangomart.core.errors import error_response

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def csrf_failed_response() -> HttpResponse:
    return error_response(
        403,
        "csrf_failed",
        "CSRF check failed: a request made with the session cookie must send the CSRF "
        "token in the X-CSRFToken header (GET /api/v1/csrf returns it).",
    )


def session_csrf_protect(run: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A view-mode decorator for every operation (before any input is parsed)."""

    @wraps(run)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            request.method not in SAFE_METHODS
            and user is not None
            and user.is_authenticated
            and not session_token_sent(request)
            and check_csrf(request) is not None
        ):
            return csrf_failed_response()
        return run(request, *args, **kwargs)

    return wrapper
