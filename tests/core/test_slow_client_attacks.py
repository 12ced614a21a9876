"""djangomart.core.web_worker against clients that trickle on purpose (one gunicorn
worker, WEB_TIMEOUT 6 s, WEB_READ_TIMEOUT 2 s, as tests/core/test_log_lines.shop_env
sets): none of them gets the worker killed, costs it much CPU, or runs it out of file
descriptors. Each failed before the worker bounded a request's reads in total, timed
its heartbeat from the parsed head, parsed a trickled head once, and counted lingering
closes as connections."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.embedded_db import REPO_ROOT
from devtools.processes import die_with_parent
from tests.core.test_log_lines import HOST, WEB_TIMEOUT, get, shop_env, wait_for
from tests.core.test_slow_clients import healthz_seconds, read_to_eof
from tests.devtools.test_make_run import free_port


class Server:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log

    def worker_pid(self) -> int:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True,
                             text=True).stdout.split()  # fmt: skip
        return int(out[0])

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def start(url: str, tmp_path: Path, *extra: str) -> Server:
    port = free_port()
    env = {**shop_env(url, port, "0"), "WEB_CONCURRENCY": "1"}
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
             "--bind", f"{HOST}:{port}", *extra],
            cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
            preexec_fn=die_with_parent,
        )  # fmt: skip
    server = Server(process, port, log)

    def serving() -> bool:
        try:
            return get(f"http://{HOST}:{port}/healthz") == 200
        except OSError:
            return False

    wait_for(serving, "answer on /healthz", process)
    return server


def stop(server: Server) -> None:
    # Gunicorn's quick shutdown: a graceful one (SIGTERM) waits for the connections the
    # attacks leave behind, seconds per test, and is not what these tests are about.
    server.process.send_signal(signal.SIGQUIT)
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture
def server(scratch_database_url: str, tmp_path: Path) -> Iterator[Server]:
    s = start(scratch_database_url, tmp_path)
    try:
        yield s
    finally:
        stop(s)


def head_start() -> bytes:
    return (f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\nX-Forwarded-Proto: https\r\n").encode()


def assert_worker_survived(server: Server, before: int) -> None:
    """The worker that was serving `before` is still the one serving, unkilled."""
    time.sleep(2)
    after = server.worker_pid()
    log = server.text()
    lines = [
        line[:260]
        for line in log.splitlines()
        if "TIMEOUT" in line or "still running" in line or "Booting worker" in line
    ]
    assert "WORKER TIMEOUT" not in log, (before, after, lines)
    assert before == after


def test_a_trickled_large_head_does_not_get_the_worker_killed(server: Server) -> None:
    """64 KiB of head at once (under gunicorn's 100 x 8190 limit), then one header line
    a second (each wait < WEB_READ_TIMEOUT): a thread takes it at 64 KiB, its recv()s
    never time out, and the heartbeat (the oldest running request) goes stale."""
    before = server.worker_pid()
    pad = b"".join(b"X-Pad-%d: " % i + b"a" * 8000 + b"\r\n" for i in range(9))
    with socket.create_connection((HOST, server.port)) as client:
        client.sendall(head_start() + pad)
        for i in range(WEB_TIMEOUT + 6):
            time.sleep(1)
            try:
                client.sendall(b"X-Slow-%d: b\r\n" % i)
            except OSError:
                break
    assert_worker_survived(server, before)


def test_a_trickled_webhook_body_does_not_get_the_worker_killed(server: Server) -> None:
    """An unsigned POST /webhooks/stripe (no credentials needed: the signature is checked
    after the body is read), 200 KiB announced, 100 KB sent, then a byte a second."""
    before = server.worker_pid()
    head = (
        f"POST /webhooks/stripe HTTP/1.1\r\nHost: {HOST}\r\nX-Forwarded-Proto: https\r\n"
        f"Stripe-Signature: t=1,v1=00\r\nContent-Length: {200 * 1024}\r\n\r\n"
    ).encode()
    with socket.create_connection((HOST, server.port)) as client:
        client.sendall(head + b"{" + b" " * 99_999)
        for _ in range(WEB_TIMEOUT + 6):
            time.sleep(1)
            try:
                client.sendall(b" ")
            except OSError:
                break
    assert_worker_survived(server, before)


def stalled_post(server: Server, path: str, header: str) -> bytes:
    """The whole answer to a POST of `path` (with one more `header` line) that announces
    a 200 KiB body, sends 100 KB of it and then nothing."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nX-Forwarded-Proto: https\r\n"
        f"{header}\r\nContent-Length: {200 * 1024}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((HOST, server.port), timeout=15) as client:
        client.sendall(head + b"{" + b" " * 99_999)
        return read_to_eof(client)


def test_a_stalled_webhook_body_is_a_client_error(server: Server) -> None:
    answer = stalled_post(server, "/webhooks/stripe", "Stripe-Signature: t=1,v1=00")
    assert answer.startswith(b"HTTP/1.1 4"), answer[:300]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_bytes_trickled_after_a_head_of_many_lines_cost_the_event_loop_little(
    server: Server,
) -> None:
    """A head of 15,000 empty-valued lines (gunicorn's parser would refuse it: more than
    100 fields) and a 4000-byte Content-Length; then single bytes. request_arrived()
    splits the whole head again for every recv()."""
    pid = server.worker_pid()
    head = (
        b"POST /webhooks/stripe HTTP/1.1\r\n" + b"a:\r\n" * 15000 + b"Content-Length: 4000\r\n\r\n"
    )
    clients = []
    for _ in range(20):
        client = socket.create_connection((HOST, server.port))
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.sendall(head)
        clients.append(client)
    time.sleep(0.3)
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    sent = 0
    while time.monotonic() - t0 < 1.5:  # within WEB_READ_TIMEOUT (2 s)
        for client in clients:
            client.send(b"x")
            sent += 1
        time.sleep(0.01)
    used = cpu_seconds(pid) - cpu0
    elapsed = time.monotonic() - t0
    for client in clients:
        client.close()
    assert used < 0.25 * elapsed, f"{sent} bytes in {elapsed:.2f} s: {used:.2f} s CPU"


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_lingering_connections_count_against_worker_connections(
    scratch_database_url: str, tmp_path: Path
) -> None:
    server = start(scratch_database_url, tmp_path, "--worker-connections", "10")
    try:
        pid = server.worker_pid()
        base = fds(pid)
        held = []
        # Two and a half times the limit: uncounted, lingering closes would peak at 25.
        # (Past the limit each connection waits for a lingering close to give up, 2 s
        # per ten: more clients prove no more and cost seconds.)
        for _ in range(25):
            client = socket.create_connection((HOST, server.port), timeout=5)
            client.sendall(head_start() + b"Connection: close\r\n\r\n")
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            held.append(client)  # half-open: never closed by the client
        peak = fds(pid) - base
        for client in held:
            client.close()
        assert peak <= 10, peak
    finally:
        stop(server)


def test_a_worker_out_of_file_descriptors_keeps_running(
    scratch_database_url: str, tmp_path: Path
) -> None:
    """Half-open clients at a modest rate; the worker's fd limit a little above what it
    uses at rest (standing in for a soft limit of 1024 and worker_connections 1000)."""
    server = start(scratch_database_url, tmp_path)
    try:
        pid = server.worker_pid()
        limit = fds(pid) + 30
        subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={limit}:{limit}"], check=True)
        held = []
        for _ in range(60):
            try:
                client = socket.create_connection((HOST, server.port), timeout=5)
                client.sendall(head_start() + b"Connection: close\r\n\r\n")
                while client.recv(65536):
                    pass
                held.append(client)
            except OSError:
                pass
        time.sleep(1)
        for client in held:
            client.close()
        lines = [
            line[:400]
            for line in server.text().splitlines()
            if "Exception in worker" in line or "Too many" in line
        ]
        assert server.worker_pid() == pid, lines
    finally:
        stop(server)


def test_an_api_body_that_stops_is_a_client_error_too(server: Server) -> None:
    """Django's UnreadablePostError (the thread's read gave up) is the client's doing: a
    JSON 400, not a 500 with a traceback (djangomart.core.middleware)."""
    answer = stalled_post(server, "/api/v1/checkout", "Content-Type: application/json")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    assert b'"code":"bad_request"' in answer.replace(b" ", b""), answer[-300:]
    assert "Internal Server Error" not in server.text()


def test_a_head_of_many_short_lines_that_stops_holds_no_thread(server: Server) -> None:
    """More lines than gunicorn accepts, and no end: gunicorn's parser waits for the end
    of a head before it counts its fields, so handing such a head to a thread would let
    ~420 bytes per connection hold it for WEB_READ_TIMEOUT (with WEB_THREADS of them,
    every other request waits). It stays in the event loop like any unfinished head."""
    head = b"GET /healthz HTTP/1.1\r\n" + b"a:\r\n" * 101
    attackers = []
    for _ in range(2):
        client = socket.create_connection((HOST, server.port))
        client.sendall(head)
        attackers.append(client)
    time.sleep(0.2)
    took = healthz_seconds(HOST, server.port)
    for client in attackers:
        client.close()
    time.sleep(2.5)
    log = server.text()
    # A control: 50 lines stay in the event loop and cost no thread.
    head = b"GET /healthz HTTP/1.1\r\n" + b"a:\r\n" * 50
    control = [socket.create_connection((HOST, server.port)) for _ in range(2)]
    for client in control:
        client.sendall(head)
    time.sleep(0.2)
    control_took = healthz_seconds(HOST, server.port)
    for client in control:
        client.close()
    assert control_took < 0.5, control_took
    assert took < 0.5, (took, "Socket error processing request" in log)


def test_a_head_that_stops_in_a_thread_logs_no_traceback(server: Server) -> None:
    """A head over 64 KiB whose rest never comes: the thread's bounded read ends it as a
    client that went away (gunicorn logs that at debug level), not with an ERROR and a
    traceback per slow client (a socket timeout has no errno: gthread's handle() would
    log it with log.exception)."""
    pad = b"".join(b"X-Pad-%d: " % i + b"a" * 8000 + b"\r\n" for i in range(9))
    with socket.create_connection((HOST, server.port), timeout=10) as client:
        client.sendall(head_start() + pad)  # > 64 KiB: a thread reads the rest
        answer = b""
        try:
            while chunk := client.recv(65536):
                answer += chunk
        except OSError:
            pass
    time.sleep(0.5)
    log = server.text()
    assert "Socket error processing request" not in log, [
        line[:300] for line in log.splitlines() if "Socket error" in line
    ]


def test_running_out_of_file_descriptors_does_not_spin_the_event_loop(server: Server) -> None:
    """Out of file descriptors with nothing lingering (connections that sent nothing yet,
    waiting in the event loop): were the listener left registered, it would stay
    readable, every select() return at once and accept() fail and log again: a core and
    a log line per loop until a pending connection times out. The worker stops
    accepting for a moment instead."""
    pid = server.worker_pid()
    limit = fds(pid) + 20
    subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={limit}:{limit}"], check=True)
    idle = []
    for _ in range(40):  # 20 get accepted and wait, the rest stay in the backlog
        with contextlib.suppress(OSError):
            idle.append(socket.create_connection((HOST, server.port), timeout=2))
    time.sleep(0.2)
    before = server.text().count("Cannot accept connections")
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(1.0)  # < WEB_READ_TIMEOUT (2 s): the idle connections still hold their fds
    used, elapsed = cpu_seconds(pid) - cpu0, time.monotonic() - t0
    warnings = server.text().count("Cannot accept connections") - before
    for client in idle:
        client.close()
    assert used < 0.3 * elapsed, (used, elapsed, warnings)
    assert warnings < 20, (used, elapsed, warnings)
