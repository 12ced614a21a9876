"""Stripe timing and checkout expiry settings are validated at start, with a clear error,
and the web worker's timeout is explicit and outlasts the Stripe budget."""

import json
import runpy

import pytest

from devtools.embedded_db import REPO_ROOT
from tests.test_settings import manage

SCRIPT = (
    "import json; from django.conf import settings as s; print(json.dumps(["
    "s.STRIPE_CONNECT_TIMEOUT, s.STRIPE_READ_TIMEOUT, s.STRIPE_RETRY_BUDGET, s.WEB_TIMEOUT, "
    "s.CHECKOUT_EXPIRY_MINUTES]))"
)


def read_settings(**env: str) -> list[float]:
    result = manage("shell", "-c", SCRIPT, DEBUG="1", **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_the_defaults_bound_a_stripe_call_well_inside_the_worker_timeout() -> None:
    connect, read, budget, web_timeout, expiry = read_settings()
    assert (connect, read, budget, web_timeout, expiry) == (3.0, 8.0, 10.0, 30, 60)
    # An attempt begun just before the budget ends may take one more connect and read.
    assert budget + connect + read <= web_timeout - 5


def test_the_documented_variables_are_read() -> None:
    assert read_settings(
        STRIPE_CONNECT_TIMEOUT="1.5", STRIPE_READ_TIMEOUT="4", STRIPE_RETRY_BUDGET="6",
        WEB_TIMEOUT="60", CHECKOUT_EXPIRY_MINUTES="30",
    ) == [1.5, 4.0, 6.0, 60, 30]  # fmt: skip


@pytest.mark.parametrize("minutes", ["29", "1441", "0", "-5"])
def test_a_checkout_expiry_outside_stripes_30_to_1440_minutes_refuses_to_start(
    minutes: str,
) -> None:
    result = manage("check", DEBUG="1", CHECKOUT_EXPIRY_MINUTES=minutes)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "CHECKOUT_EXPIRY_MINUTES must be between 30 and 1440" in result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STRIPE_RETRY_BUDGET": "20"}, "(31 s) must be at most WEB_TIMEOUT (30 s) minus 5 s"),
        ({"WEB_TIMEOUT": "20"}, "(21 s) must be at most WEB_TIMEOUT (20 s) minus 5 s"),
        # Within a third of WEB_TIMEOUT, but the last attempt's timeouts would reach it.
        (
            {
                "STRIPE_RETRY_BUDGET": "10",
                "STRIPE_CONNECT_TIMEOUT": "8",
                "STRIPE_READ_TIMEOUT": "10",
            },
            "(28 s) must be at most WEB_TIMEOUT (30 s) minus 5 s",
        ),
        ({"STRIPE_READ_TIMEOUT": "0"}, "STRIPE_READ_TIMEOUT must be > 0"),
        ({"STRIPE_CONNECT_TIMEOUT": "-1"}, "STRIPE_CONNECT_TIMEOUT must be > 0"),
        ({"STRIPE_READ_TIMEOUT": "11"}, "STRIPE_READ_TIMEOUT must be > 0 and <= STRIPE_RETRY"),
    ],
)
def test_stripe_timings_that_cannot_hold_refuse_to_start(env: dict[str, str], message: str) -> None:
    result = manage("check", DEBUG="1", **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_gunicorn_kills_workers_after_web_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEB_TIMEOUT", raising=False)
    assert runpy.run_path(str(REPO_ROOT / "gunicorn.conf.py"))["timeout"] == 30
    monkeypatch.setenv("WEB_TIMEOUT", "45")
    assert runpy.run_path(str(REPO_ROOT / "gunicorn.conf.py"))["timeout"] == 45
