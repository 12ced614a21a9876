"""The one JSON error shape of DjangoMart: `{"code": <stable>, "message": <human>}`.

`code` is part of the API contract (clients branch on it); `message` may change.
Domain exceptions carry their own status and code, so services raise them and
the API layer renders them in one place (djangomart/api/errors.py).
"""

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
}


def error_response(status: int, code: str, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"code": code, "message": message, **extra}, status=status)


def generic_error_response(status: int, message: str | None = None) -> JsonResponse:
    code = STATUS_CODES.get(status, "error")
    return error_response(status, code, message or code.replace("_", " ").capitalize() + ".")


class DomainError(Exception):
    """A refusal that the client can act on. Subclasses set `status` and `code`."""

    status = 400
    code = "bad_request"
    default_message = "The request cannot be processed."

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        self.message = message or self.default_message
        self.extra = extra
        super().__init__(self.message)

    def as_response(self) -> JsonResponse:
        return error_response(self.status, self.code, self.message, **self.extra)


class NotFound(DomainError):
    status = 404
    code = "not_found"
    default_message = "Not found."


# Django's handler400/403/404/500: JSON for every path, as API clients expect, but the
# storefront's: people read those (its template, storefront/error.html).
logger = logging.getLogger(__name__)
STOREFRONT_PREFIX = "/shop/"
PAGE_TITLES = {
    400: "This request could not be read",
    403: "You may not open this page",
    404: "Page not found",
    500: "Something went wrong on our side",
}


def _storefront_page(request: HttpRequest, status: int) -> HttpResponse | None:
    if not request.path.startswith(STOREFRONT_PREFIX):
        return None
    title = PAGE_TITLES[status]
    try:
        return render(
            request, "storefront/error.html", {"status": status, "title": title}, status=status
        )
    except Exception:
        # An error page must not fail in turn (the brand's or the cart's query with the
        # database down): the bare page, and the reason in the log.
        logger.exception("storefront error page failed")
        return HttpResponse(f"<!doctype html><title>{title}</title><h1>{title}</h1>", status=status)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _storefront_page(request, 400) or generic_error_response(400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _storefront_page(request, 403) or generic_error_response(403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _storefront_page(request, 404) or generic_error_response(
        404, f"No route for {request.method} {request.path}."
    )


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith(STOREFRONT_PREFIX):
        # No template context processors: the brand or the database may be what failed.
        from django.template import loader

        return HttpResponse(loader.get_template("storefront/500.html").render(), status=500)
    return generic_error_response(500, "Internal error; it has been logged.")
