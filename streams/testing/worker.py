"""`tierstream run` in a child process: its environment, its /metrics, waiting for it.

Used by the integration tests, bench and `make demo`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from ..broker import ensure_topics
from ..settings import Settings
from . import prometheus


def spawn(
    env: dict[str, str], sink: IO[bytes], cwd: Path | None, args: tuple[str, ...] = (), **popen: Any
) -> subprocess.Popen[bytes]:
    """`python -m tierstream.cli run` with this environment, its output to `sink`."""
    return subprocess.Popen(
        [sys.executable, "-m", "tierstream.cli", "run", *args],
        env=env,
        stdout=sink,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        **popen,
    )


def worker_env(settings: Settings, rules: str) -> dict[str, str]:
    """The environment of a `tierstream run` child process with these settings."""
    env = dict(os.environ)
    env.update(settings.environment())
    env["TIERSTREAM_RULES"] = rules
    return env


class WorkerProcess:
    """`tierstream run` in a child process with the given settings, on input topics created
    first (as their owners would in production: the worker refuses missing ones) unless
    `create_inputs` is off."""

    def __init__(
        self,
        settings: Settings,
        rules: str,
        log: Path,
        create_inputs: bool = True,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        if create_inputs:
            asyncio.run(ensure_topics(settings, settings.input_topics, settings.partitions))
        env = {**worker_env(settings, rules), **(env or {})}
        self.port = settings.web_port
        self.log = log
        self.sink = log.open("ab")
        self.proc = spawn(env, self.sink, log.parent, args)

    def metrics(self) -> dict[str, float]:
        """Prometheus samples by name and label set ('name{labels}' -> value)."""
        return prometheus.samples(prometheus.scrape(self.port))

    def consumed(self) -> float:
        return prometheus.total(self.metrics(), "tierstream_records_total")

    def lag(self) -> float | None:
        m = self.metrics()
        lags = [v for k, v in m.items() if k.startswith("tierstream_consumer_lag")]
        return sum(lags) if lags else None

    def wait_for(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"worker exited ({self.proc.returncode}) waiting for {what}:\n{self.tail()}"
                )
            if predicate():
                return
            time.sleep(0.5)
        progress = {
            k: v
            for k, v in self.metrics().items()
            if k.startswith(("tierstream_records", "tierstream_consumer_lag"))
        }
        raise AssertionError(f"timed out waiting for {what} (metrics now: {progress}):\n{self.tail()}")

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text("utf-8", "replace").splitlines()[-n:])

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.sink.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.sink.close()
