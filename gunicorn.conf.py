"""Gunicorn settings for production and for `make run` (which binds to 127.0.0.1)."""

import multiprocessing
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# Gunicorn also reads WEB_CONCURRENCY itself; this is the default when it is unset.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
wsgi_app = "djangomart.wsgi:application"
# A worker silent for this long is killed (the client gets no answer at all). Explicit
# because the Stripe budget is checked against it: settings.py refuses a budget plus
# timeouts that would not end 5 s before WEB_TIMEOUT, so a checkout always ends first.
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
# DjangoMart logs one JSON line per request itself (djangomart.core.middleware).
accesslog = None
errorlog = "-"
# Heartbeat files in RAM: a slow disk must not make the master kill healthy workers.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
graceful_timeout = 20
# Gunicorn 24+ opens a control socket in $HOME by default; several servers on one
# machine (tests, benchmarks, make run) would fight over it and we do not use it.
control_socket_disable = True
