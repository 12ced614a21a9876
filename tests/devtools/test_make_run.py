"""`make run`: migrates, seeds, serves the catalog, writes only JSON lines on stdout, and
after SIGTERM to `make` leaves no process behind."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.error import URLError

import psutil
import pytest

from devtools.embedded_db import REPO_ROOT
from tests.logs import json_lines


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def test_make_run_serves_the_demo_catalog_and_stops_everything_on_sigterm(
    scratch_database_url: str, tmp_path: Path
) -> None:
    port, sandbox_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")},
        "DATABASE_URL": scratch_database_url,
        "PORT": str(port),
        "STRIPE_SANDBOX_PORT": str(sandbox_port),
        "DEBUG": "1",
    }
    # A file, not a pipe: nobody has to keep draining it while the shop runs.
    stdout_path = tmp_path / "stdout"
    with stdout_path.open("wb") as stdout:
        launcher = subprocess.Popen(
            ["make", "--no-print-directory", "run", f"PYTHON={sys.executable}"],
            env=env, cwd=REPO_ROOT, stdout=stdout, stderr=subprocess.PIPE,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        body = None
        while time.monotonic() < deadline and launcher.poll() is None:
            try:
                body = get_json(f"http://127.0.0.1:{port}/api/v1/products")
                break
            except (URLError, OSError):
                time.sleep(0.5)
        assert isinstance(body, dict), "the catalog was not served within 60 s"
        assert body["count"] == 12
        # Without STRIPE_SECRET_KEY the offline Stripe sandbox runs too.
        deadline = time.monotonic() + 30
        while True:
            try:
                assert isinstance(
                    get_json(f"http://127.0.0.1:{sandbox_port}/_sandbox/config"), dict
                )
                break
            except (URLError, OSError):
                assert time.monotonic() < deadline, "the Stripe sandbox did not start"
                time.sleep(0.3)
        tree = psutil.Process(launcher.pid).children(recursive=True)
        commands = [" ".join(p.cmdline()) for p in tree]
        assert any("gunicorn" in c for c in commands)
        assert any("stripe_sandbox" in c for c in commands)
        assert any("procrastinate worker" in c for c in commands)
        # The outbound webhooks have their own worker; the job worker does not take them.
        workers = [c for c in commands if "procrastinate worker" in c]
        assert any("--queues=outbound_webhooks --concurrency=4" in c for c in workers)
        assert all(
            "--queues=" in c and "outbound_webhooks" not in c
            for c in workers
            if "--concurrency" not in c
        )
    finally:
        launcher.send_signal(signal.SIGTERM)
        _, stderr = launcher.communicate(timeout=60)
    # make re-raises the signal on itself once its recipe has stopped.
    assert launcher.returncode in (0, -signal.SIGTERM), stderr.decode()
    assert "stopped everything" in stderr.decode()
    # What is meant for people is on stderr (the migrations, the URLs); stdout is the
    # shop's log, one JSON object per line, as in production.
    assert "Apply all migrations" in stderr.decode()
    records = json_lines(stdout_path.read_text())
    messages = [(r["logger"], r["message"]) for r in records]
    assert any(m.startswith("Starting gunicorn") for _, m in messages)
    assert any(r.get("path") == "/api/v1/products" and r["status"] == 200 for r in records)
    time.sleep(0.5)
    assert not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for url in (
        f"http://127.0.0.1:{port}/healthz",
        f"http://127.0.0.1:{sandbox_port}/_sandbox/config",
    ):
        with pytest.raises((URLError, OSError)):
            get_json(url)


def test_the_banner_shows_the_storefront_first() -> None:
    from devtools.run import banner

    text = banner("http://127.0.0.1:8000", {"STRIPE_API_BASE": "http://127.0.0.1:12111"}, True)
    urls = [line for line in text.splitlines() if "http://" in line]
    assert "http://127.0.0.1:8000/shop/" in urls[0]
    assert urls[0].split("http://")[0].strip() == "DjangoMart is running. Open the shop:"
