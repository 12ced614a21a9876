"""Cross-cutting HTTP concerns: request ids with one access-log line, and JSON errors."""

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, UnreadablePostError

from djangomart.core.errors import error_response, generic_error_response

logger = logging.getLogger("djangomart.request")

REQUEST_ID_HEADER = "X-Request-ID"
# An upstream proxy's id is kept so one id follows a request through every hop;
# anything that could forge log structure is replaced.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# Pages that people read (the checkout return page included) keep their HTML errors.
HTML_PREFIXES = ("/admin/", "/static/", "/checkout/", "/shop/")

Handler = Callable[[HttpRequest], HttpResponse]


class RequestLogMiddleware:
    """Gives each request an id (echoed in `X-Request-ID`) and logs one JSON line for it."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.META["REQUEST_ID"] = request_id
        started = time.perf_counter()
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        logger.info(
            "request",
            extra={
                "request_id": request_id,
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
        return response


class JsonErrorMiddleware:
    """Turns the non-JSON error responses that frameworks produce (django-ninja's bare
    405, Django's debug 404 page) into the standard JSON error body. The admin keeps
    its HTML pages: people, not programs, read those."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code >= 400
            and not request.path.startswith(HTML_PREFIXES)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            replacement = generic_error_response(response.status_code)
            for header in ("Allow", "Retry-After"):
                if header in response:
                    replacement[header] = response[header]
            return replacement
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """A body the client stopped sending (the web worker's WEB_READ_TIMEOUT) is the
        client's fault: a 400, not a 500 with a traceback."""
        if isinstance(exception, UnreadablePostError):
            return error_response(400, "bad_request", "The request body did not arrive in full.")
        return None


class NulGuardMiddleware:
    """Refuses a request with a NUL character (U+0000) in its path, query string or headers
    (cookies included) with a JSON 400, before anything reads them: PostgreSQL text cannot
    hold NUL, so such a value reaching a query (a slug, a search term, a session key)
    would be a database error, a 500. JSON bodies are checked by the API's string types
    (djangomart/api/types.py), which name the field in a 422."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        location = _nul_location(request)
        if location is not None:
            message = "Must not contain NUL characters"
            return error_response(
                400,
                "bad_request",
                f"Invalid {location}: NUL characters are not allowed.",
                details=[{"location": location, "message": message, "type": "nul_character"}],
            )
        return self.get_response(request)


def _nul_location(request: HttpRequest) -> str | None:
    if "\x00" in request.path_info or "\x00" in request.path:
        return "path"
    for name, values in request.GET.lists():
        if "\x00" in name or any("\x00" in value for value in values):
            return f"query.{name.replace(chr(0), '')}"
    for key, value in request.META.items():
        is_header = key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH")
        if is_header and isinstance(value, str) and "\x00" in value:
            name = key.removeprefix("HTTP_").replace("_", "-").title()
            return f"header.{name}"
    return None
