"""The shop's real WSGI application, for a test that kills the web process at the worst
moment: right after the webhook ingest's COMMIT returned, before any answer is sent.

Armed by a file: when the file named by CRASH_ARMED_FILE exists, the next commit of this
process deletes it and SIGKILLs the process (the gunicorn worker) as soon as PostgreSQL
confirmed the commit. Unarmed, it is exactly `djangomart.wsgi.application`. Test use only;
serve it with `gunicorn tests.payments.crashing_wsgi:application`."""

import os
import signal
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from djangomart.wsgi import application

__all__ = ["application"]

_commit = BaseDatabaseWrapper.commit


def _commit_then_die_if_armed(self: BaseDatabaseWrapper, *args: Any, **kwargs: Any) -> None:
    _commit(self, *args, **kwargs)
    armed = os.environ.get("CRASH_ARMED_FILE", "")
    if armed and os.path.exists(armed):
        os.remove(armed)
        os.kill(os.getpid(), signal.SIGKILL)


# Every transaction.atomic() block ends in this method: a request that commits goes here.
BaseDatabaseWrapper.commit = _commit_then_die_if_armed  # type: ignore[method-assign]
