"""Gunicorn settings for production and for `make run` (which binds to 127.0.0.1)."""

import logging
import multiprocessing
import os
from typing import Any

from djangomart.core.logging import json_stdout_logging

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# Gunicorn also reads WEB_CONCURRENCY itself; this is the default when it is unset.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
# Gunicorn's threaded worker, changed so that a client holding its connection open (sending
# nothing, sending slowly, or never closing after its answer) takes no thread and does not
# stop the worker: gunicorn's sync and gthread workers both wait on such clients
# (djangomart/core/web_worker.py; it reads WEB_READ_TIMEOUT). Each thread has its own
# database connection: PostgreSQL sees up to workers x threads per machine
# (docs/deployment.md, "Production configuration").
worker_class = "djangomart.core.web_worker.WebWorker"
threads = int(os.environ.get("WEB_THREADS", "2"))
# Seconds an idle kept-alive connection stays open, in the event loop (no thread). A proxy
# that reuses its connections to gunicorn must drop idle ones sooner than this, or it
# sometimes sends a request on a connection gunicorn is closing (a 502).
keepalive = int(os.environ.get("WEB_KEEPALIVE", "5"))
wsgi_app = "djangomart.wsgi:application"
# A worker one of whose requests has run this long is killed, with every request it is
# serving (their clients get no answer at all). Explicit because the Stripe budget is
# checked against it: settings.py refuses a budget plus timeouts that would not end 5 s
# before WEB_TIMEOUT, so a checkout always ends first.
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
# Gunicorn's own lines (boot, signals, WORKER TIMEOUT, "Request still running when the
# worker timed out" with its stack, "Error handling request" with its traceback) as JSON
# on stdout, like the application's: the master gets the root handler Django gives each
# worker (djangomart/core/logging.py), and gunicorn's loggers lose their plain-text stderr
# handlers. This replaces every key of gunicorn's CONFIG_DEFAULTS, which it merges only at
# the top level. gunicorn.error keeps the level of --log-level.
logconfig_dict = json_stdout_logging(
    {
        "gunicorn.error": None,
        # DjangoMart logs one line per request itself (djangomart.core.middleware), and
        # a logconfig_dict switches gunicorn's access log on: WARNING keeps it silent
        # (its lines are INFO). Set INFO here to have them too, in JSON.
        "gunicorn.access": "WARNING",
    }
)
# Warnings from the master (before any worker loads Django) as log records, not text.
logging.captureWarnings(True)
# Heartbeat files in RAM: a slow disk must not make the master kill healthy workers.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108
graceful_timeout = 20
# Gunicorn 24+ opens a control socket in $HOME by default; several servers on one
# machine (tests, benchmarks, make run) would fight over it and we do not use it.
control_socket_disable = True


def child_exit(server: Any, worker: Any) -> None:
    """Multi-process metrics (docs/operations.md): a worker that ended leaves its counts
    for the scrape to keep adding up; only its live gauges, which describe a process
    that no longer exists, are removed."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
