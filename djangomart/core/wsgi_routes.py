"""WSGI handlers with their own middleware: a path that must be as cheap as it can be
(the Stripe webhook's acknowledgement) skips what it never uses (sessions, auth, CSRF,
messages, static files), while every other path keeps the full stack."""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.core.handlers.wsgi import WSGIHandler
from django.test.utils import override_settings

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class MiddlewareSubsetHandler(WSGIHandler):
    """Django's WSGI handler built with `middleware` instead of settings.MIDDLEWARE
    (and, with `urlconf`, resolving its paths there). Built once per process, when
    the WSGI module loads, like Django's own."""

    def __init__(self, middleware: list[str], *, urlconf: str | None = None) -> None:
        self.middleware = middleware
        self.urlconf = urlconf
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        # Django builds the chain from settings.MIDDLEWARE; this process-wide override
        # lasts only while the chain is built (no request is served yet).
        with override_settings(MIDDLEWARE=self.middleware):
            super().load_middleware(is_async)

    def get_response(self, request: Any) -> Any:
        if self.urlconf is not None:
            request.urlconf = self.urlconf
        return super().get_response(request)


def by_path(default: WsgiApp, routes: Mapping[str, WsgiApp]) -> WsgiApp:
    """A WSGI application that hands each request whose path is exactly one of `routes`
    to that handler, and every other request to `default`."""

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return routes.get(environ.get("PATH_INFO", ""), default)(environ, start_response)

    return application
