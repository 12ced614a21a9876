"""The WSGI application gunicorn serves (gunicorn.conf.py): Django's, except that the
Stripe webhook's acknowledgement, the one path Stripe may hit a thousand times a
second, runs through settings.WEBHOOK_MIDDLEWARE only (djangomart/core/wsgi_routes.py),
and a Prometheus scrape through settings.METRICS_MIDDLEWARE."""

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djangomart.settings")

_full = get_wsgi_application()

from django.urls import reverse  # noqa: E402

from djangomart.core.wsgi_routes import MiddlewareSubsetHandler, by_path  # noqa: E402

_webhook = MiddlewareSubsetHandler(settings.WEBHOOK_MIDDLEWARE)
_metrics = MiddlewareSubsetHandler(settings.METRICS_MIDDLEWARE)
application = by_path(_full, {reverse("stripe-webhook"): _webhook, reverse("metrics"): _metrics})
