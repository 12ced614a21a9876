from django.http import HttpRequest


def is_htmx(request: HttpRequest) -> bool:
    """Whether htmx sent the request for a fragment (django_htmx's middleware sets
    request.htmx). Not when it restores a page of its history it could not keep (the
    back button after a search): that wants the whole page. Views that answer either
    say `Vary: HX-Request`, so that no cache hands a fragment to a page load."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not getattr(htmx, "history_restore_request", False)
