"""Webhook receivers for the tests: real HTTP servers on 127.0.0.1, in a thread."""

import datetime
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    """Answers `failures` 500s (`failure_answer`) to each event id, then 200; records
    every request."""

    failures: int = 0
    on_request: Callable[[], None] | None = None  # run before answering
    failure_answer: bytes = b"temporarily broken " * 1000
    requests: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/djangomart"

    def accepted(self, event_id: str) -> int:
        return sum(
            1
            for r in self.requests
            if r.headers["DjangoMart-Event-Id"] == event_id and 200 <= r.status < 300
        )

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                event_id = self.headers["DjangoMart-Event-Id"]
                seen = sum(
                    1 for r in receiver.requests if r.headers["DjangoMart-Event-Id"] == event_id
                )
                status = 500 if seen < receiver.failures else 200
                receiver.requests.append(Received(dict(self.headers.items()), body, status))
                if receiver.on_request is not None:
                    receiver.on_request()
                answer = b'{"ok": true}' if status == 200 else receiver.failure_answer
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class HangingReceiver:
    """Takes connections (the kernel completes them from the listen backlog) and never
    answers."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}/hooks"

    def stop(self) -> None:
        self._socket.close()


def tls_files(directory: Path, host: str) -> tuple[Path, Path, Path]:
    """A test CA and a certificate it signed for `host`: (ca, cert, key) PEM files."""
    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer: x509.Name | None, key: Any, signer: Any) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                critical=False,
            )
        )
        if issuer is None:
            builder = builder.add_extension(
                x509.BasicConstraints(ca=True, path_length=None), critical=True
            ).add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )  # fmt: skip
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False
            ).add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("DjangoMart test CA", None, ca_key, ca_key)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build(host, ca.subject, key, ca_key)
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@dataclass
class TLSReceiver:
    """Answers 200 over TLS on 127.0.0.1 with a certificate for `host`; records the
    requests' Host headers and the names the clients asked for (SNI)."""

    cert: Path
    key: Path
    hosts: list[str] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def start(self) -> "TLSReceiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.hosts.append(self.headers["Host"])
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        context.sni_callback = lambda _sock, name, _context: receiver.server_names.append(name)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class TricklingReceiver:
    """Reads the request, then sends its answer one byte every `interval` seconds, each
    well within the read timeout: the status line first (`head_first` False) or, with
    `head_first`, a whole 200 head and then a body ended by closing the connection.
    Records when the client closed the connection."""

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    HEAD = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"

    def __init__(self, *, head_first: bool, interval: float = 0.2, length: int = 60) -> None:
        self.head_first = head_first
        self.interval = interval
        self.length = length  # bytes trickled: the answer would take interval * length
        self.first_byte_at: float | None = None
        self.closed_at: float | None = None
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(4)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}/hooks"

    def _serve(self) -> None:
        try:
            conn, _ = self._socket.accept()
        except OSError:
            return
        with conn:
            self._read_request(conn)
            if self.head_first:
                conn.sendall(self.HEAD)
                trickle = b"k" * self.length
            else:
                trickle = (self.ANSWER * (self.length // len(self.ANSWER) + 1))[: self.length]
            self.first_byte_at = time.monotonic()
            for byte in trickle:
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    break
                readable, _, _ = select.select([conn], [], [], self.interval)
                if readable:  # nothing more is sent by the client: this is its close
                    break
            self.closed_at = time.monotonic()

    @staticmethod
    def _read_request(conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        while len(body) < length:
            body += conn.recv(65536)

    def stop(self) -> None:
        self._socket.close()
        self._thread.join(5)
