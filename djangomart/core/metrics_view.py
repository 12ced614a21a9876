"""GET /metrics: every metric in Prometheus' text format (djangomart.core.metrics), for a
scraper. Served by its own WSGI handler with the webhook's short middleware list
(djangomart/wsgi.py): no session, auth, CSRF or request log work per scrape.

Who may read it (docs/operations.md, "Scraping"):
- METRICS_TOKEN set: only a request with `Authorization: Bearer <METRICS_TOKEN>`
  (compared in constant time), else 401;
- unset: anyone when DEBUG or METRICS_PUBLIC is on (a private network that the proxy
  does not expose), else nobody: a 404, as if there were no such page, so that a
  production server never publishes its numbers by omission.
"""

import hmac
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from djangomart.core.errors import error_response
from djangomart.core.metrics import metrics_exposition
from djangomart.core.metrics_db import DatabaseCollector

logger = logging.getLogger(__name__)


@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    return HttpResponse(metrics_exposition(DatabaseCollector()), content_type=CONTENT_TYPE_LATEST)


def _refusal(request: HttpRequest) -> HttpResponse | None:
    token: str = settings.METRICS_TOKEN
    if not token:
        if settings.DEBUG or settings.METRICS_PUBLIC:
            return None
        return error_response(404, "not_found", f"No route for {request.method} {request.path}.")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return None
    logger.warning(
        "metrics: scrape refused", extra={"reason": "bad_token" if given else "no_token"}
    )
    response = error_response(
        401, "unauthorized", "Send Authorization: Bearer <METRICS_TOKEN> to read the metrics."
    )
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response
