"""gunicorn's `wsgi_app` for the benchmarks: DjangoMart exactly as djangomart.wsgi
serves it, with the baselines beside it on /bench/bare, /bench/naive-ack and
/bench/seed-style, which no middleware touches. One server, one configuration, one
run: every figure is a ratio."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djangomart.settings")

from djangomart.core.wsgi_routes import MiddlewareSubsetHandler, by_path
from djangomart.wsgi import application as shop

_baselines = MiddlewareSubsetHandler([], urlconf="bench.app.urls")
application = by_path(
    shop,
    {path: _baselines for path in ("/bench/bare", "/bench/naive-ack", "/bench/seed-style")},
)
