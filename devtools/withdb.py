"""Run one command with the development environment: `DEBUG=1` unless set, and a
`DATABASE_URL` for the embedded PostgreSQL unless one is given.

    .venv/bin/python -m devtools.withdb -- python manage.py createsuperuser
"""

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from contextlib import ExitStack

from devtools.embedded_db import embedded_postgres
from devtools.processes import Shutdown, install_shutdown_handlers


def dev_environ(stack: ExitStack) -> dict[str, str]:
    """The environment for development commands. Starts the embedded database (its
    lifetime bound to `stack`) when DATABASE_URL is not set."""
    environ = dict(os.environ)
    environ.setdefault("DEBUG", "1")
    if not environ.get("DATABASE_URL"):
        environ["DATABASE_URL"] = stack.enter_context(embedded_postgres())
        print("Using the embedded PostgreSQL (DATABASE_URL is not set).", file=sys.stderr)
    return environ


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: python -m devtools.withdb -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    # Ctrl-C reaches the child directly (same process group); we only wait for it.
    # A no-op handler rather than SIG_IGN, which the child would inherit.
    install_shutdown_handlers(sigint=False)
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    with ExitStack() as stack:
        child = subprocess.Popen(args, env=dev_environ(stack))
        try:
            return child.wait()
        except Shutdown as stop:
            child.send_signal(stop.signum)
            try:
                return child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                return child.wait()


if __name__ == "__main__":
    sys.exit(main())
