"""gunicorn's `wsgi_app` for the ingest benchmark: DjangoMart exactly as
djangomart.wsgi serves it, with the baselines beside it on /bench/bare and
/bench/naive-ack, which no middleware touches. One server, one configuration, one run:
every figure is a ratio."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djangomart.settings")

from djangomart.core.wsgi_routes import MiddlewareSubsetHandler, by_path
from djangomart.wsgi import application as shop

_baselines = MiddlewareSubsetHandler([], urlconf="bench.app.urls")
application = by_path(shop, {"/bench/bare": _baselines, "/bench/naive-ack": _baselines})
