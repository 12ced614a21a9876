"""/healthz and /readyz, the probes of load balancers and orchestrators."""

import os
import subprocess
import sys

import pytest
from django.db import connection
from django.test import Client

from devtools.embedded_db import REPO_ROOT


def test_healthz_answers_without_the_database(client: Client) -> None:
    # No django_db mark: touching the database here would fail the test.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_ok_when_the_database_is_migrated(client: Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "unapplied_migrations": 0}


@pytest.mark.django_db
def test_readyz_is_503_while_a_migration_is_unapplied(client: Client) -> None:
    with connection.cursor() as cursor:  # rolled back with the test's transaction
        cursor.execute(
            "DELETE FROM django_migrations WHERE app = 'catalog' AND name = '0001_initial'"
        )
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["unapplied_migrations"] == 1


def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    # A process of its own whose DATABASE_URL points at a port nobody listens on.
    script = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "r = Client().get('/readyz', HTTP_HOST='localhost')\n"
        "print(r.status_code, r.json()['database'])\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "djangomart.settings",
        "DATABASE_URL": "postgres://nobody@127.0.0.1:9/nothing?connect_timeout=2",
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "503 unreachable"


def test_healthz_refuses_other_methods(client: Client) -> None:
    assert client.post("/healthz").status_code == 405
