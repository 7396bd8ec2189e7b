"""TLS for integration tests: a throwaway CA, a TLS broker, a TLS Redis with a password.

The shipped Tansu 0.6.0 lists --cert and --key, but its CLI refuses them together
("the argument '--cert <CERT>' cannot be used with '--key <KEY>'") and either alone
leaves the listener in plaintext (measured). So the broker's TLS listener here is a
small TLS terminator (tls_proxy.py, beside this module) in front of a plaintext Tansu
that advertises the terminator's address: every client connection, bootstrap and
metadata-advertised alike, is TLS. Redis is Debian's redis-server, built with TLS.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .localstack import HOST, LocalStackError, Proc, _accepts, broker_binary, free_port

SYSTEM_REDIS = Path("/usr/bin/redis-server")


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA that signed cert
    cert: Path  # server certificate for 127.0.0.1 and localhost
    key: Path
    other_ca: Path  # a CA that signed nothing here: the "wrong CA"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(directory: Path) -> Pki:
    """A CA, a server certificate it signs (SAN 127.0.0.1, localhost), and an unrelated CA."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("ca", "other-ca"):
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=tierstream test {name}",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=directory,
        )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr", cwd=directory,
    )  # fmt: skip
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n", "utf-8")
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "san.cnf", "-out", "server.pem", cwd=directory,
    )  # fmt: skip
    return Pki(
        directory / "ca.pem", directory / "server.pem", directory / "server.key", directory / "other-ca.pem"
    )


class TlsBroker:
    """A plaintext Tansu behind a TLS terminator; clients see only kafka://127.0.0.1:<tls port>."""

    def __init__(self, workdir: Path, pki: Pki) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        inner, outer = free_port(), free_port()
        self.port = outer
        self.url = f"kafka://{HOST}:{outer}"
        argv = [
            broker_binary(), "broker",
            "--listener-url", f"tcp://{HOST}:{inner}",
            "--advertised-listener-url", f"tcp://{HOST}:{outer}",
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip
        self.broker = Proc(
            "broker", argv, inner, f"kafka://{HOST}:{inner}", workdir / "broker.log", _accepts, workdir
        )
        proxy = [
            sys.executable, str(Path(__file__).with_name("tls_proxy.py")),
            "--listen", str(outer), "--upstream", str(inner), "--cert", str(pki.cert), "--key", str(pki.key),
        ]  # fmt: skip
        self.proxy = Proc("tls-proxy", proxy, outer, self.url, workdir / "tls-proxy.log", _accepts, workdir)

    def start(self) -> TlsBroker:
        self.broker.start()
        self.proxy.start()
        return self

    def stop(self) -> None:
        self.proxy.stop()
        self.broker.stop()


def _tls_answers(ca: Path) -> object:
    def ready(port: int) -> bool:
        context = ssl.create_default_context(cafile=str(ca))
        try:
            with (
                socket.create_connection((HOST, port), timeout=0.5) as raw,
                context.wrap_socket(raw, server_hostname=HOST) as s,
            ):
                s.sendall(b"PING\r\n")
                return s.recv(64)[:1] in (b"+", b"-")  # PONG, or NOAUTH: it serves
        except OSError:
            return False

    return ready


def start_tls_redis(workdir: Path, pki: Pki, password: str) -> Proc:
    """Debian's redis-server on a TLS port only, with requirepass; clients need no certificate."""
    if not SYSTEM_REDIS.is_file():
        raise LocalStackError("no /usr/bin/redis-server (TLS-capable): run `make tools`")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        str(SYSTEM_REDIS), "--port", "0", "--tls-port", str(port), "--bind", HOST,
        "--tls-cert-file", str(pki.cert), "--tls-key-file", str(pki.key), "--tls-ca-cert-file", str(pki.ca),
        "--tls-auth-clients", "no", "--requirepass", password,
        "--save", "", "--appendonly", "no", "--dir", str(workdir),
    ]  # fmt: skip
    ready = _tls_answers(pki.ca)
    proc = Proc("redis-tls", argv, port, f"rediss://{HOST}:{port}/0", workdir / "redis.log", ready, workdir)  # type: ignore[arg-type]
    return proc.start()
