"""Settings come only from the environment; production defaults are safe."""

import json
import os
import subprocess
import sys

from devtools.embedded_db import REPO_ROOT

PRODUCTION_KEY = "test-only-" + "k3y-" * 15  # long and varied enough for check --deploy


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS"}
    }
    environ.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env=environ,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_reports_nothing_with_debug_off() -> None:
    result = manage(
        "check", "--deploy", "--fail-level", "DEBUG",
        DEBUG="0", SECRET_KEY=PRODUCTION_KEY, ALLOWED_HOSTS="shop.example.com",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_refuses_to_start_without_a_secret_key() -> None:
    result = manage("check", DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_development_defaults_need_only_a_database() -> None:
    result = manage("check", DEBUG="1")
    assert result.returncode == 0, result.stderr


def test_without_database_url_the_error_says_what_to_do() -> None:
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env=environ,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "DATABASE_URL is not set" in result.stderr


def test_databases_other_than_postgresql_are_refused() -> None:
    result = manage("check", DEBUG="1", DATABASE_URL="mysql://u:p@127.0.0.1:3306/shop")
    assert result.returncode != 0
    assert "PostgreSQL only" in result.stderr


def test_settings_read_the_documented_variables() -> None:
    script = (
        "import json; from django.conf import settings as s; print(json.dumps(["
        "s.DEBUG, s.ALLOWED_HOSTS, s.PORT, s.DATABASES['default']['NAME'], s.SECURE_SSL_REDIRECT, "
        "s.STRIPE_SECRET_KEY, s.STRIPE_WEBHOOK_SECRETS, s.STRIPE_API_BASE]))"
    )
    result = manage(
        "shell", "-c", script,
        DEBUG="0", SECRET_KEY=PRODUCTION_KEY, ALLOWED_HOSTS="a.example,b.example", PORT="9123",
        DATABASE_URL="postgres://u:p@db.internal:5432/shopdb",
        STRIPE_SECRET_KEY="sk_test_fake", STRIPE_WEBHOOK_SECRETS="whsec_old,whsec_new",
        STRIPE_API_BASE="http://127.0.0.1:12111",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        False, ["a.example", "b.example"], 9123, "shopdb", True,
        "sk_test_fake", ["whsec_old", "whsec_new"], "http://127.0.0.1:12111",
    ]  # fmt: skip


def test_a_reconcile_batch_size_under_1_refuses_to_start() -> None:
    result = manage("check", DEBUG="1", RECONCILE_BATCH_SIZE="0")
    assert result.returncode != 0
    assert "RECONCILE_BATCH_SIZE must be at least 1" in result.stderr
