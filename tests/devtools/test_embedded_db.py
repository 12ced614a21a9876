"""The embedded PostgreSQL that `make run` and `make test` use when DATABASE_URL is unset."""

import os
import subprocess
import sys
from pathlib import Path

import psutil
import psycopg

from devtools.embedded_db import REPO_ROOT, embedded_postgres


def postgres_processes(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(pgdata) in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def test_embedded_postgres_starts_serves_and_stops(tmp_path: Path) -> None:
    # The data folder must be reachable by the unprivileged user PostgreSQL runs as under root.
    tmp_path.chmod(0o755)
    pgdata = tmp_path / "pgdata"
    with embedded_postgres(pgdata) as url:
        assert postgres_processes(pgdata)
        with psycopg.connect(url) as conn:
            version = conn.execute("SHOW server_version_num").fetchone()
            assert version is not None
            assert int(version[0]) >= 160000
            conn.execute("CREATE TABLE t (id int CHECK (id > 0))")
            conn.execute("INSERT INTO t VALUES (1)")
    assert not postgres_processes(pgdata)
    # The data survives a restart.
    with embedded_postgres(pgdata) as url, psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
    assert not postgres_processes(pgdata)


def test_withdb_provides_a_database_url_and_debug_when_unset() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DEBUG"}}
    script = (
        "import os, psycopg; "
        "c = psycopg.connect(os.environ['DATABASE_URL']); "
        "print(os.environ['DEBUG'], c.execute('select 1').fetchone()[0])"
    )
    result = subprocess.run(
        [sys.executable, "-m", "devtools.withdb", "--", sys.executable, "-c", script],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "1"]


def test_withdb_keeps_a_given_database_url_and_passes_the_exit_code() -> None:
    env = {**os.environ, "DATABASE_URL": "postgres://given/db"}
    script = "import os, sys; print(os.environ['DATABASE_URL']); sys.exit(3)"
    result = subprocess.run(
        [sys.executable, "-m", "devtools.withdb", "--", sys.executable, "-c", script],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 3
    assert result.stdout.strip() == "postgres://given/db"
