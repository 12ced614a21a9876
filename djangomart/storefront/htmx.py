from django.http import HttpRequest


def is_htmx(request: HttpRequest) -> bool:
    """Whether htmx sent the request (django_htmx's middleware sets request.htmx): it
    then wants the fragment, not the page."""
    return bool(getattr(request, "htmx", False))
