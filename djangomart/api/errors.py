"""Maps every exception the API can raise to the JSON error shape, in one place."""

import logging
from collections.abc import Sequence
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, UnreadablePostError
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError

from djangomart.accounts.auth import NotAuthenticated
from djangomart.core.errors import DomainError, error_response, generic_error_response

logger = logging.getLogger(__name__)


def register_error_handlers(api: NinjaAPI) -> None:
    @api.exception_handler(DomainError)
    def domain_error(request: HttpRequest, exc: DomainError) -> HttpResponse:
        return exc.as_response()

    @api.exception_handler(ValidationError)
    def validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        details = [
            {
                "location": error_location(err.get("loc", ())),
                "message": error_message(str(err.get("msg", ""))),
                "type": str(err.get("type", "")),
            }
            for err in exc.errors
        ]
        return error_response(422, "validation_error", validation_summary(details), details=details)

    @api.exception_handler(Throttled)
    def throttled(request: HttpRequest, exc: Throttled) -> HttpResponse:
        response = generic_error_response(429, "Too many requests; retry later.")
        response["Retry-After"] = str(max(1, int(exc.wait or 1)))
        return response

    @api.exception_handler(AuthenticationError)
    def not_authenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        # An operation with `auth=` that no credential satisfied (djangomart.accounts.auth).
        return NotAuthenticated().as_response()

    @api.exception_handler(HttpError)
    def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        # django-ninja raises HttpError(400) for a body that is not valid JSON.
        return generic_error_response(exc.status_code, str(exc))

    @api.exception_handler(Http404)
    def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return generic_error_response(404)

    @api.exception_handler(UnreadablePostError)
    def body_incomplete(request: HttpRequest, exc: UnreadablePostError) -> HttpResponse:
        # The client stopped sending its body (the web worker's WEB_READ_TIMEOUT), as
        # djangomart.core.middleware answers it outside the API.
        return error_response(400, "bad_request", "The request body did not arrive in full.")

    @api.exception_handler(Exception)
    def unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
        logger.exception("unhandled API error", extra={"path": request.path})
        return generic_error_response(500, "Internal error; it has been logged.")


def error_location(loc: Sequence[Any]) -> str:
    """django-ninja's `("body", "body", "lines", 0, "quantity")` -> `lines.0.quantity`: a body
    field by its own path (the first two parts are the source and the view's argument
    name); other sources keep theirs: `query.page`, `path.slug`, `header.X-Order-Token`."""
    parts = [str(part) for part in loc]
    if parts[:1] == ["body"]:
        return ".".join(parts[2:]) or "body"
    return ".".join(parts) or "request"


def error_message(message: str) -> str:
    # pydantic prefixes the message of a ValueError raised by a validator.
    message = message.removeprefix("Value error, ")
    return message[:1].upper() + message[1:]


def validation_summary(details: list[dict[str, str]]) -> str:
    if not details:
        return "The request has invalid parameters."
    first = details[0]
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return f"Invalid {first['location']}: {first['message']}{more}."
