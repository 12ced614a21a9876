"""Clients that hold a connection without finishing with it (issue 9) must not keep other
requests waiting: one that connects and sends nothing, one that stops halfway through its
request line, and one that reads its answer but never closes its side (half-open: the
server has sent its FIN and would linger for the client's). A real gunicorn with
gunicorn.conf.py, as production runs it."""

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from devtools.embedded_db import REPO_ROOT
from devtools.processes import die_with_parent
from djangomart.core.web_worker import BUFFERED_REQUEST_MAX, _Connection, request_arrived
from tests.core.test_log_lines import HOST, get, shop_env, wait_for
from tests.devtools.test_make_run import free_port

WORKERS = 2
THREADS = 2
# Short, so that the test sees the server close the connections it holds.
READ_TIMEOUT = 2
# More of each kind than the server has threads in all: none of them may take one.
PER_KIND = WORKERS * THREADS + 1
PROMPT = 0.5  # seconds; /healthz itself answers in a few milliseconds


@pytest.fixture
def server(scratch_database_url: str, tmp_path: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {
        **shop_env(scratch_database_url, port, "0"),
        "WEB_CONCURRENCY": str(WORKERS),
        "WEB_THREADS": str(THREADS),
        "WEB_READ_TIMEOUT": str(READ_TIMEOUT),
    }
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
             "--bind", f"{HOST}:{port}"],
            cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
            preexec_fn=die_with_parent,
        )  # fmt: skip

    def serving() -> bool:
        try:
            return get(f"http://{HOST}:{port}/healthz") == 200
        except OSError:
            return False

    try:
        wait_for(serving, "answer on /healthz", process)
        yield HOST, port
    finally:
        # Gunicorn's quick shutdown: a graceful one (SIGTERM) waits for the connections
        # the tests leave behind, and is not what they are about.
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def healthz_seconds(host: str, port: int) -> float:
    """How long a fresh `GET /healthz` takes to be answered in full (15 s at most)."""
    started = time.monotonic()
    with socket.create_connection((host, port), timeout=15) as client:
        client.sendall(request_bytes(host))
        try:
            answer = read_to_eof(client)
        except TimeoutError:
            return time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    return time.monotonic() - started


def request_bytes(host: str) -> bytes:
    return (
        f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-Proto: https\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


def read_to_eof(client: socket.socket) -> bytes:
    answer = b""
    while chunk := client.recv(65536):
        answer += chunk
    return answer


def held_connections(host: str, port: int) -> dict[str, list[socket.socket]]:
    held: dict[str, list[socket.socket]] = {"half-open": [], "silent": [], "half a line": []}
    for _ in range(PER_KIND):
        client = socket.create_connection((host, port), timeout=15)
        held["half-open"].append(client)
        client.sendall(request_bytes(host))
        # The whole answer and the server's FIN; this side stays open.
        assert read_to_eof(client).startswith(b"HTTP/1.1 200 ")
    for _ in range(PER_KIND):
        held["silent"].append(socket.create_connection((host, port)))
    for _ in range(PER_KIND):
        client = socket.create_connection((host, port))
        held["half a line"].append(client)
        client.sendall(b"GET /healthz HT")
    return held


def test_clients_that_hold_their_connection_do_not_delay_other_requests(
    server: tuple[str, int],
) -> None:
    host, port = server
    held = held_connections(host, port)
    try:
        took = [healthz_seconds(host, port) for _ in range(WORKERS * THREADS * 2)]
        assert max(took) < PROMPT, (
            f"/healthz took {', '.join(f'{t:.3f}' for t in took)} s while "
            f"{PER_KIND} connections of each kind were held ({', '.join(held)})"
        )
        # The server lets go of those whose request never came (a file descriptor each)
        # by itself.
        deadline = time.monotonic() + READ_TIMEOUT + 3
        for client in held["silent"] + held["half a line"]:
            client.settimeout(max(0.1, deadline - time.monotonic()))
            assert client.recv(65536) == b""
    finally:
        for clients in held.values():
            for client in clients:
                client.close()


def webhook_post(host: str, body_length: int, *extra_headers: str) -> bytes:
    # A refused signature (400) once the whole body has been read: no database needed.
    return (
        f"POST /webhooks/stripe HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-Proto: https\r\n"
        "Content-Type: application/json\r\nStripe-Signature: t=1,v1=00\r\n"
        + "".join(f"{header}\r\n" for header in extra_headers)
        + f"Content-Length: {body_length}\r\nConnection: close\r\n\r\n"
    ).encode()


def test_requests_that_arrive_in_pieces_or_together_are_served_whole(
    server: tuple[str, int],
) -> None:
    host, port = server
    with socket.create_connection((host, port), timeout=15) as client:
        # A head in three pieces, then on the same kept-alive connection two requests
        # in one piece (the second read ahead with the first), the last one closing.
        request = request_bytes(host).replace(b"Connection: close\r\n", b"")
        for piece in (request[:7], request[7:40], request[40:]):
            client.sendall(piece)
            time.sleep(0.3)
        client.sendall(request + request_bytes(host))
        answers = read_to_eof(client)
    assert answers.count(b"HTTP/1.1 200 OK\r\n") == 3, answers

    body = b"{" + b" " * 99
    with socket.create_connection((host, port), timeout=15) as client:
        # A body in pieces, within the buffered size.
        client.sendall(webhook_post(host, len(body)) + body[:10])
        time.sleep(0.3)
        client.sendall(body[10:])
        assert read_to_eof(client).startswith(b"HTTP/1.1 400 ")
    with socket.create_connection((host, port), timeout=15) as client:
        # A client that waits for 100 Continue before its body.
        client.sendall(webhook_post(host, len(body), "Expect: 100-continue"))
        assert client.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        client.sendall(body)
        assert read_to_eof(client).startswith(b"HTTP/1.1 400 ")
    large = b"{" + b" " * (200 * 1024 - 1)
    with socket.create_connection((host, port), timeout=15) as client:
        # Larger than the event loop buffers: a thread reads the rest as it comes.
        client.sendall(webhook_post(host, len(large)) + large[:100_000])
        time.sleep(0.3)
        client.sendall(large[100_000:])
        assert read_to_eof(client).startswith(b"HTTP/1.1 400 ")


def test_a_large_body_that_stops_frees_its_thread_after_the_read_timeout(
    server: tuple[str, int],
) -> None:
    host, port = server
    stalled = []
    try:
        started = time.monotonic()
        for _ in range(WORKERS * THREADS):
            client = socket.create_connection((host, port), timeout=READ_TIMEOUT * 3)
            # More than the event loop buffers, so a thread takes it, and then no more.
            client.sendall(webhook_post(host, 200 * 1024) + b"{" + b" " * 99_999)
            stalled.append(client)
        for client in stalled:
            # The thread gives up on the body after READ_TIMEOUT without a byte: the
            # webhook refuses the body it could not read (a 400: the client's doing, not
            # a 500), and the connection ends.
            answer = read_to_eof(client)
            assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
            assert b'"code":"incomplete_body"' in answer.replace(b" ", b""), answer[-300:]
        # Two such requests at most waited for one thread of a worker, one after the other.
        assert time.monotonic() - started < 2 * READ_TIMEOUT + 2
        assert healthz_seconds(host, port) < PROMPT
    finally:
        for client in stalled:
            client.close()


@pytest.mark.parametrize("value", ["0", "301", "ten"])
def test_gunicorn_refuses_to_start_with_a_bad_read_timeout(
    scratch_database_url: str, value: str
) -> None:
    port = free_port()
    env = {**shop_env(scratch_database_url, port, "0"), "WEB_READ_TIMEOUT": value}
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"{HOST}:{port}"],
        cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"WEB_READ_TIMEOUT={value!r}: give a number of seconds" in result.stderr


@pytest.mark.parametrize(
    ("received", "arrived"),
    [
        (b"", False),
        (b"GET / HT", False),
        (b"GET / HTTP/1.1\r\nHost: a\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", True),
        (b"GET / HTTP/1.1\nHost: a\n\n", True),  # the parser's to judge
        (b"POST / HTTP/1.1\nContent-Length: 9\n\nab\r\n\r\n", True),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcd", False),
        (b"POST / HTTP/1.1\r\ncontent-length:  5 \r\n\r\nabcde", True),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", True),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", True),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", True),
        (b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", True),
        (b"POST / HTTP/1.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n", True),
        (b"POST / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n" + b"x" * BUFFERED_REQUEST_MAX, True),
        (b"GET / HTTP/1.1\r\nX: " + b"x" * BUFFERED_REQUEST_MAX, True),
    ],
)
def test_the_event_loop_hands_over_a_request_once_nothing_is_left_to_wait_for(
    received: bytes, arrived: bool
) -> None:
    assert request_arrived(received) is arrived


HEAD_PIECES = [b"GET / HTTP/1.1", b"POST / HTTP/1.1", b"\r\n", b"\n", b"\r", b"a:", b" 1",
               b"Content-Length: 3", b"Transfer-Encoding: chunked", b"x", b"abc"]  # fmt: skip


# A head whose end arrives a byte at a time, and one whose end straddles two reads.
@example(pieces=[b"GET / HTTP/1.1", b"\r\n", b"a:", b"\r\n", b"\r\n"], cuts=[1])
@example(pieces=[b"POST / HTTP/1.1", b"\r\n", b"Content-Length: 3", b"\r\n", b"\r\n",
                 b"abc"], cuts=[30, 2, 3])  # fmt: skip
@given(
    pieces=st.lists(st.sampled_from(HEAD_PIECES), max_size=30),
    cuts=st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=40),
)
def test_a_request_trickling_in_is_judged_as_if_it_had_come_whole(
    pieces: list[bytes], cuts: list[int]
) -> None:
    """_Connection.arrived() keeps what it learnt between reads (so that a head sent a
    byte at a time is parsed once): after every read it says what request_arrived()
    says of all the bytes so far, wherever the reads cut them."""
    data = b"".join(pieces)
    conn = _Connection.__new__(_Connection)  # arrived() needs no socket or worker
    conn.received = bytearray()
    conn._request_reset()
    position = 0
    for cut in [*cuts, len(data)]:
        if position >= len(data):
            break
        conn.received += data[position : position + cut]
        position += cut
        assert conn.arrived() is request_arrived(conn.received), bytes(conn.received)
