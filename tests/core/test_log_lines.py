"""Every line on stdout is one JSON object (README, docs/deployment.md "Logs"): gunicorn's
own lines as much as the application's, with tracebacks inside their line, and nothing
in plain text on stderr either. Real processes with the production configuration."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError

import psycopg
import pytest

from devtools.embedded_db import REPO_ROOT
from devtools.processes import die_with_parent
from tests.devtools.test_make_run import free_port
from tests.logs import json_lines

HOST = "127.0.0.1"
# Short, so that the stuck request below costs the test seconds; the Stripe budget plus
# its timeouts must end 5 s before it (settings.py refuses to start otherwise).
WEB_TIMEOUT = 6
# Short too: how long the server waits for a client's request to arrive.
WEB_READ_TIMEOUT = 2


def shop_env(database_url: str, port: int, debug: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "DJANGO_"))},
        "DATABASE_URL": database_url,
        "DEBUG": debug,
        "SECRET_KEY": "test-only-" + "k3y-" * 12,
        "ALLOWED_HOSTS": HOST,
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "WEB_THREADS": "2",
        "WEB_TIMEOUT": str(WEB_TIMEOUT),
        "WEB_READ_TIMEOUT": str(WEB_READ_TIMEOUT),
        "STRIPE_RETRY_BUDGET": "0.5",
        "STRIPE_CONNECT_TIMEOUT": "0.25",
        "STRIPE_READ_TIMEOUT": "0.25",
        "STRIPE_SECRET_KEY": "sk_test_logs",
        "STRIPE_WEBHOOK_SECRETS": "whsec_logs",
    }


def get(url: str) -> int:
    # Behind the TLS proxy of production: without it DEBUG=0 redirects to https.
    request = urllib.request.Request(url, headers={"X-Forwarded-Proto": "https"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except HTTPError as exc:
        return exc.code


def wait_for(predicate: Any, what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not predicate():
        assert process.poll() is None, f"gunicorn exited ({process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within 60 s"
        time.sleep(0.2)


@pytest.mark.parametrize("debug", ["0", "1"])
def test_gunicorn_writes_only_json_lines_with_tracebacks_inside(
    scratch_database_url: str, tmp_path: Path, debug: str
) -> None:
    port = free_port()
    # Files, not pipes: nobody has to keep draining them while the server runs.
    stdout_path, stderr_path = tmp_path / "stdout", tmp_path / "stderr"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
             "--bind", f"{HOST}:{port}"],
            # A database without tables: every query fails, through the real error paths.
            cwd=REPO_ROOT, env=shop_env(scratch_database_url, port, debug),
            stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
            preexec_fn=die_with_parent,
        )  # fmt: skip
    base = f"http://{HOST}:{port}"
    slow_client, stuck_client = socket.socket(), socket.socket()
    lock_holder = None
    try:

        def serving() -> bool:
            try:
                return get(f"{base}/healthz") == 200
            except (URLError, OSError):
                return False

        wait_for(serving, "answer on /healthz", server)
        # The API's own handler logs what it did not expect (djangomart/api/errors.py)...
        assert get(f"{base}/api/v1/products") == 500
        # ...and a page's uncaught exception goes through Django's handler (django.request).
        assert get(f"{base}/checkout/return?session_id=cs_test_logs") == 500
        # A request stuck in the database (waiting for a lock this test holds) runs until
        # gunicorn's master kills its worker after WEB_TIMEOUT.
        lock_holder = psycopg.connect(scratch_database_url, autocommit=True)
        lock_holder.execute("CREATE TABLE catalog_product (id integer)")
        lock_holder.execute("BEGIN")
        lock_holder.execute("LOCK TABLE catalog_product IN ACCESS EXCLUSIVE MODE")
        stuck_client.connect((HOST, port))
        stuck_client.sendall(
            b"GET /api/v1/products HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-Proto: https\r\n\r\n"
        )
        # A client that announces a body and never sends it waits in the worker's event
        # loop, holding no thread, until WEB_READ_TIMEOUT closes its connection.
        slow_client.connect((HOST, port))
        slow_client.sendall(
            b"POST /webhooks/stripe HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"X-Forwarded-Proto: https\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        # Neither hangs the server: its other thread answers meanwhile.
        started = time.monotonic()
        assert get(f"{base}/healthz") == 200
        assert time.monotonic() - started < 1
        slow_client.settimeout(WEB_READ_TIMEOUT + 3)
        assert slow_client.recv(1024) == b""  # closed, with no answer

        def replaced() -> bool:
            # Either stream: wherever the lines go, the checks below say if it is right.
            output = stdout_path.read_text() + stderr_path.read_text()
            return "Booting worker" in output.partition("WORKER TIMEOUT")[2]

        wait_for(replaced, "worker timeout and a new worker", server)
        stuck_client.settimeout(10)
        assert stuck_client.recv(1024) == b""  # killed: no answer at all
    finally:
        if lock_holder is not None:
            lock_holder.close()
        slow_client.close()
        stuck_client.close()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    records = json_lines(stdout_path.read_text())
    assert stderr_path.read_text() == ""
    messages = [(r["logger"], r["message"]) for r in records]
    assert any(m.startswith("Starting gunicorn") for _, m in messages)
    assert any(m.startswith("Booting worker with pid") for _, m in messages)
    assert ("gunicorn.error", "Shutting down: Master") in messages

    def traceback_of(logger: str, message: str) -> str:
        [record] = [r for r in records if r["logger"] == logger and message in r["message"]]
        assert record["level"] in ("ERROR", "CRITICAL"), record
        text = str(record["exc_info"])
        assert text.startswith("Traceback (most recent call last):"), text
        return text

    assert 'relation "catalog_product" does not exist' in traceback_of(
        "djangomart.api.errors", "unhandled API error"
    )
    assert "orders/views.py" in traceback_of(
        "django.request", "Internal Server Error: /checkout/return"
    )
    [timeout] = [r for r in records if r["message"].startswith("WORKER TIMEOUT")]
    assert timeout["level"] == "CRITICAL"
    # Where the killed worker was stuck: the request it was serving, with its stack.
    [stuck] = [
        r for r in records if r["message"] == "Request still running when the worker timed out"
    ]
    assert (stuck["logger"], stuck["level"]) == ("gunicorn.error", "ERROR")
    assert stuck["running_s"] >= WEB_TIMEOUT
    assert "djangomart/catalog/api.py" in stuck["stack"]


def test_django_records_and_warnings_are_json_lines_on_stdout_only() -> None:
    # Django's default handlers would print `django` records in plain text on stderr
    # with DEBUG on, and warnings.warn() writes there unless logging captures it.
    code = (
        "import django, logging, warnings; django.setup(); "
        "logging.getLogger('django.template').warning('from django'); "
        "warnings.warn('careful', UserWarning)"
    )
    env = {**os.environ, "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "djangomart.settings"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    records = json_lines(result.stdout)
    assert [(r["level"], r["logger"]) for r in records] == [
        ("WARNING", "django.template"),
        ("WARNING", "py.warnings"),
    ]
    assert "UserWarning: careful" in records[1]["message"]
