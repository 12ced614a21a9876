"""The shop's real WSGI application, for a test that kills the web process at the worst
moment: right after the webhook ingest's COMMIT returned, before any answer is sent.

Armed by a file: while the file named by CRASH_ARMED_FILE holds an event id, the
transaction that stores that event (the INSERT into payments_stripeevent) is watched,
and the moment PostgreSQL confirmed it the process (the gunicorn worker) renames the file
to `<file>.fired`, writes its pid there and SIGKILLs itself. Unarmed, it is exactly
`djangomart.wsgi.application`. Test use only; serve it with
`gunicorn tests.payments.crashing_wsgi:application`.

The hook sits below the ingest code, on the database connection, so it finds the COMMIT
whichever way it is issued: the end of the outermost `transaction.atomic()` (today),
an explicit `transaction.commit()`, the request's own transaction (ATOMIC_REQUESTS), or
PostgreSQL committing the statement by itself (autocommit, no atomic block)."""

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from djangomart.wsgi import application

__all__ = ["application"]

_WATCHED = "_crash_test_event_stored"


def _armed_event_id() -> str:
    armed = os.environ.get("CRASH_ARMED_FILE", "")
    try:
        return Path(armed).read_text().strip() if armed else ""
    except FileNotFoundError:
        return ""


def _die() -> None:
    armed = Path(os.environ["CRASH_ARMED_FILE"])
    fired = armed.with_name(armed.name + ".fired")
    # Disarm first, so that the worker gunicorn starts next serves the redelivery.
    armed.rename(fired)
    fired.write_text(str(os.getpid()))
    os.kill(os.getpid(), signal.SIGKILL)


def _watch_event_insert(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    result = execute(sql, params, many, context)
    if "INSERT INTO payments_stripeevent" in sql and params:
        event_id = _armed_event_id()
        if event_id and params[0] == event_id:
            db = context["connection"]
            if db.get_autocommit() and not db.in_atomic_block:
                _die()  # PostgreSQL committed the statement on its own
            setattr(db, _WATCHED, True)
    return result


def _install(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    # Runs on every (re)connection of the same wrapper object: add the hook once.
    if _watch_event_insert not in connection.execute_wrappers:
        connection.execute_wrappers.append(_watch_event_insert)


connection_created.connect(_install)

_commit = BaseDatabaseWrapper.commit
_rollback = BaseDatabaseWrapper.rollback


def _commit_then_die_if_watched(self: BaseDatabaseWrapper) -> None:
    _commit(self)
    if getattr(self, _WATCHED, False):
        _die()


def _rollback_and_forget(self: BaseDatabaseWrapper) -> None:
    setattr(self, _WATCHED, False)
    _rollback(self)


BaseDatabaseWrapper.commit = _commit_then_die_if_watched  # type: ignore[method-assign]
BaseDatabaseWrapper.rollback = _rollback_and_forget  # type: ignore[method-assign]
