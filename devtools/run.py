"""`make run`: the whole shop in the foreground.

Starts the embedded PostgreSQL (unless DATABASE_URL is set), migrates, loads the
demo catalog, then runs the web server (gunicorn), the Stripe event workers
(STRIPE_EVENT_WORKERS of them, default 2), a job worker (procrastinate), the outbound
webhooks' own job worker (queue outbound_webhooks) and, unless
STRIPE_SECRET_KEY is set, the offline Stripe sandbox, until Ctrl-C or SIGTERM,
when it stops every process it started, the database last. They all share a fresh
PROMETHEUS_MULTIPROC_DIR, so that /metrics counts every one of them.

As in production, stdout carries only JSON log lines (the web server's and the job
worker's); what is meant for people (migration progress, the URLs, the sandbox's own
log) goes to stderr.
"""

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from contextlib import ExitStack
from urllib.error import URLError

from devtools.embedded_db import REPO_ROOT
from devtools.processes import Shutdown, die_with_parent, install_shutdown_handlers, parent_is_gone
from devtools.withdb import dev_environ

PYTHON = sys.executable
STOP_TIMEOUT = 20.0


def manage(env: dict[str, str], *args: str) -> None:
    # Their progress ("Applying ... OK") is for the developer, on stderr like ours: stdout
    # carries only JSON log lines, as in production (README, "Logs").
    subprocess.run(
        [PYTHON, "manage.py", *args], env=env, cwd=REPO_ROOT, check=True, stdout=sys.stderr
    )


def start(
    name: str, args: Sequence[str], env: dict[str, str], *, human_output: bool = False
) -> subprocess.Popen[bytes]:
    """Starts a child whose stdout is ours (JSON log lines), or, with `human_output`, goes
    to our stderr with the rest of the text meant for people."""
    print(f"starting {name}: {' '.join(args)}", file=sys.stderr)
    return subprocess.Popen(
        args,
        env=env,
        cwd=REPO_ROOT,
        stdout=sys.stderr if human_output else None,
        # Own session: Ctrl-C reaches only us, and we stop the children in order.
        start_new_session=True,
        preexec_fn=die_with_parent,
    )


def wait_ready(url: str, processes: dict[str, subprocess.Popen[bytes]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check_alive(processes)
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own URL
                if response.status == 200:
                    return
        except (URLError, OSError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not become ready within {timeout:.0f}s")


def check_alive(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for name, process in processes.items():
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode}")


def stop_all(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    # A second Ctrl-C must not cut the teardown short; the timeout below kills stragglers.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda signum, frame: None)
    for process in processes.values():
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for name, process in processes.items():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{name} did not stop in time; killing it", file=sys.stderr)
            process.kill()
            process.wait()


def loopback_binds(port: str) -> list[str]:
    """127.0.0.1 and, where the machine has it, [::1]: some clients (Node 17+) try
    `localhost` as ::1 first."""
    binds = ["--bind", f"127.0.0.1:{port}"]
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return binds
    return [*binds, "--bind", f"[::1]:{port}"]


def banner(base: str, env: dict[str, str], sandbox: bool) -> str:
    stripe = (
        f"Stripe sandbox at {env['STRIPE_API_BASE']} (pay with 4242 4242 4242 4242; "
        "see stripe_sandbox/README.md)"
        if sandbox
        else "real Stripe (STRIPE_SECRET_KEY is set)"
    )
    if not sandbox and not env.get("STRIPE_WEBHOOK_SECRETS"):
        stripe += "\n  WARNING:     STRIPE_WEBHOOK_SECRETS is empty: every webhook will be refused."
    return f"""
DjangoMart is running. Open the shop: {base}/shop/   (docs/storefront.md)
  API docs:    {base}/api/v1/docs      (OpenAPI schema: {base}/api/v1/openapi.json)
  Products:    {base}/api/v1/products
  Admin:       {base}/admin/
  Metrics:     {base}/metrics           (Prometheus; open with DEBUG, see docs/operations.md)
  Staff login: in another terminal run `make superuser` to create a staff account.
  Payments:    {stripe}
Press Ctrl-C to stop everything.
"""


def use_sandbox(env: dict[str, str], web_port: str) -> list[str]:
    """Points the shop at a local stripe_sandbox (fresh webhook secret per run) and
    returns the command that starts it."""
    port = env.get("STRIPE_SANDBOX_PORT", "12111")
    secret = "whsec_" + secrets.token_hex(24)
    env["STRIPE_SECRET_KEY"] = "sk_test_sandbox_not_a_real_key"  # noqa: S105 - the sandbox takes any sk_test_
    env["STRIPE_WEBHOOK_SECRETS"] = secret
    env["STRIPE_API_BASE"] = f"http://127.0.0.1:{port}"
    return [
        PYTHON, "-m", "stripe_sandbox", "--port", port,
        "--webhook-url", f"http://127.0.0.1:{web_port}/webhooks/stripe",
        "--webhook-secret", secret,
    ]  # fmt: skip


def event_workers(env: dict[str, str]) -> int:
    """How many `stripe_events_worker` processes to start (docs/deployment.md)."""
    value = env.get("STRIPE_EVENT_WORKERS", "2")
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise RuntimeError(f"STRIPE_EVENT_WORKERS={value!r}: give a number from 1 to 64.")
    return int(value)


# Every queue but outbound_webhooks: a receiver that hangs must never hold the slots of
# refunds, reconciliation or emails (docs/webhooks-outbound.md, docs/deployment.md).
JOB_QUEUES = "stripe_events,refunds,reconcile,carts,emails"
OUTBOUND_WEBHOOKS_QUEUE = "outbound_webhooks"


def outbound_webhook_concurrency(env: dict[str, str]) -> str:
    """How many deliveries the outbound webhooks worker sends at once."""
    value = env.get("OUTBOUND_WEBHOOK_CONCURRENCY", "4")
    if not value.isdigit() or not 1 <= int(value) <= 64:
        raise RuntimeError(f"OUTBOUND_WEBHOOK_CONCURRENCY={value!r}: give a number from 1 to 64.")
    return value


def main() -> int:
    original_ppid = os.getppid()
    install_shutdown_handlers()
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        with ExitStack() as stack:
            env = dev_environ(stack)
            # Every process below counts into this run's own directory, fresh and empty,
            # so that /metrics adds up this run only (docs/operations.md).
            env["PROMETHEUS_MULTIPROC_DIR"] = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="djangomart-metrics-")
            )
            port = env.get("PORT", "8000")
            manage(env, "migrate", "--noinput")
            manage(env, "seed_demo")
            if env.get("DEBUG", "") in ("0", "false", "False", "no", "off"):
                manage(env, "collectstatic", "--noinput", "-v0")
            sandbox = not env.get("STRIPE_SECRET_KEY")
            if sandbox:
                # A development tool with its own plain-text log, not part of the shop.
                processes["stripe-sandbox"] = start(
                    "stripe-sandbox", use_sandbox(env, port), env, human_output=True
                )
            processes["worker"] = start(
                "worker",
                [PYTHON, "manage.py", "procrastinate", "worker", f"--queues={JOB_QUEUES}"],
                env,
            )
            processes["webhooks-worker"] = start(
                "webhooks-worker",
                [
                    PYTHON, "manage.py", "procrastinate", "worker",
                    f"--queues={OUTBOUND_WEBHOOKS_QUEUE}",
                    f"--concurrency={outbound_webhook_concurrency(env)}",
                ],
                env,
            )  # fmt: skip
            for n in range(event_workers(env)):
                processes[f"events-{n + 1}"] = start(
                    f"events-{n + 1}", [PYTHON, "manage.py", "stripe_events_worker"], env
                )
            processes["web"] = start(
                "web",
                [PYTHON, "-m", "gunicorn", "-c", "gunicorn.conf.py", *loopback_binds(port)],
                env,
            )
            try:
                base = f"http://127.0.0.1:{port}"
                wait_ready(f"{base}/readyz", processes, timeout=60)
                if sandbox:
                    wait_ready(f"{env['STRIPE_API_BASE']}/_sandbox/config", processes, timeout=30)
                print(banner(base, env, sandbox), file=sys.stderr, flush=True)
                while True:
                    check_alive(processes)
                    if parent_is_gone(original_ppid):
                        print("parent exited; stopping", file=sys.stderr)
                        return 0
                    time.sleep(0.5)
            finally:
                stop_all(processes)
    except Shutdown as stop:
        print(f"\nreceived {stop}; stopped everything.", file=sys.stderr)
        return 0
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"make run failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
