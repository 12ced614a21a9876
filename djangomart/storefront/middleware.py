from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from djangomart.core.errors import STOREFRONT_PREFIX


class FormErrorStatusMiddleware:
    """A storefront form sent back with its errors is a 422, not a 200: allauth's views
    (signup, login, password reset) re-render a refused form as a success, which tells
    a client, a test or an assistive tool nothing went wrong. The storefront's own views
    set their status themselves."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_template_response(
        self, request: HttpRequest, response: TemplateResponse
    ) -> TemplateResponse:
        if (
            request.method == "POST"
            and response.status_code == 200
            and request.path.startswith(STOREFRONT_PREFIX)
        ):
            form = (response.context_data or {}).get("form")
            if form is not None and getattr(form, "errors", None):
                response.status_code = 422
        return response
