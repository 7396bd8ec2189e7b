"""Helpers for worker tests: run `tierstream run` as a process, wait for it, compare
its outputs with `simulate` run per partition (each partition has its own clock)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from tierstream.engine.decode import guess_customer, guess_key
from tierstream.engine.evaluate import Output
from tierstream.engine.partition import PartitionEngine
from tierstream.engine.partitioner import partition_for
from tierstream.engine.rules import load_rules
from tierstream.generate import generate_events, write_events
from tierstream.kafkaio import capture, ensure_topics, replay
from tierstream.settings import Settings
from tierstream.simulate import output_line, read_lines, simulate


def make_bank(path: Path, customers: int, days: int, seed: int, noise: bool = True, late: bool = True) -> int:
    with path.open("w", encoding="utf-8") as out:
        return write_events(generate_events(customers, days, seed, None, noise, late, usd=False), out)


def simulate_per_partition(events: Path, rules: str, partitions: int) -> list[dict[str, Any]]:
    """What a worker with `partitions` partitions must produce: simulate on each
    partition's records, in file order. Records without a customer id are skipped
    (replay sends them to an arbitrary partition; they only ever dead-letter)."""
    return reference_per_partition(events, rules, partitions).outputs


class Reference:
    """`simulate` run per partition: each partition's final engine (its tables), the
    outputs in order, and the dead letters of records without a customer id (replay
    sends those to any partition; they dead-letter whatever the state)."""

    def __init__(self) -> None:
        self.engines: dict[int, PartitionEngine] = {}
        self.outputs: list[dict[str, Any]] = []
        self.keyless: list[dict[str, Any]] = []


def reference_per_partition(
    events: Path, rules: str, partitions: int, now: int | None = None, after: Reference | None = None
) -> Reference:
    """`now` (epoch us): the wall clock `future_timestamp` is judged against, as a worker's.
    `after`: go on from that reference (its engines, outputs and dead letters), as a
    worker goes on with a second file published after the first."""
    parts: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    keyless: list[tuple[int, bytes]] = []
    with events.open("rb") as f:
        for number, line in read_lines(f):
            doc = json.loads(line)
            value = doc.get("value")
            if doc.get("topic") not in ("bank.balances", "bank.transactions", "bank.profiles"):
                continue
            cid = guess_key(value) if isinstance(value, str) else guess_customer(value)
            if not isinstance(cid, str):
                keyless.append((number, line))
                continue
            parts[partition_for(cid, partitions)].append((number, line))
    ref = Reference()
    loaded = load_rules(rules)

    def run(
        lines: list[tuple[int, bytes]], engine: PartitionEngine | None = None
    ) -> tuple[PartitionEngine, list[dict[str, Any]]]:
        outputs: list[dict[str, Any]] = []

        def emit(output: Output) -> None:
            outputs.append(json.loads(output_line(output)))

        if engine is not None and now is not None:
            engine.now = lambda: now
        return simulate(loaded, lines, emit, now=now, engine=engine), outputs

    if after is not None:
        ref.engines.update(after.engines)
        ref.outputs += after.outputs
        ref.keyless += after.keyless
    for p in sorted(parts):
        ref.engines[p], outputs = run(parts[p], ref.engines.get(p))
        ref.outputs += outputs
    if keyless:
        ref.keyless += run(keyless)[1]
    return ref


def publish(settings: Settings, events: Path) -> int:
    """Replay an event file to the settings' input topics; how many records were sent."""
    with events.open("rb") as f:
        return asyncio.run(replay(settings, read_lines(f), None, False))


def captured(settings: Settings, idle: float = 3.0) -> list[dict[str, Any]]:
    """Every output record so far, as event-file dicts."""
    sink = io.StringIO()
    asyncio.run(capture(settings, sink, idle))
    return [json.loads(x) for x in sink.getvalue().splitlines()]


def output_ids(lines: list[dict[str, Any]]) -> set[str]:
    return {x["value"]["event_id"] for x in lines if x["topic"] != "tierstream.dlq"}


def dead_letters(lines: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted(
        (x["value"]["error"], x["value"]["payload"]) for x in lines if x["topic"] == "tierstream.dlq"
    )


def final_tiers(lines: list[dict[str, Any]]) -> dict[str, str]:
    tiers: dict[str, tuple[str, str]] = {}
    for x in lines:
        v = x["value"]
        if x["topic"] == "tier.changes":
            prev = tiers.get(v["customer_id"])
            if prev is None or prev[0] <= v["effective_at"]:
                tiers[v["customer_id"]] = (v["effective_at"], v["to_tier"])
    return {k: t for k, (_, t) in tiers.items()}


def worker_env(settings: Settings, rules: str) -> dict[str, str]:
    """The environment of a `tierstream run` child process with these settings."""
    env = dict(os.environ)
    env.update(
        {
            "TIERSTREAM_BROKER_URL": settings.broker_url,
            "TIERSTREAM_REDIS_URL": settings.redis_url,
            "TIERSTREAM_RULES": rules,
            "TIERSTREAM_STORE": settings.store,
            "TIERSTREAM_LIVE_CLOCK": "true" if settings.live_clock else "false",
            "TIERSTREAM_WEB_PORT": str(settings.web_port),
            "TIERSTREAM_APP_ID": settings.app_id,
            "TIERSTREAM_TOPIC_PREFIX": settings.topic_prefix,
            "TIERSTREAM_PARTITIONS": str(settings.partitions),
            "TIERSTREAM_LOGLEVEL": settings.loglevel,
            "TIERSTREAM_API_TOKEN": settings.api_token.get_secret_value(),
            "TIERSTREAM_SWEEP_INTERVAL_SECONDS": str(settings.sweep_interval_seconds),
            "TIERSTREAM_BROKER_SECURITY_PROTOCOL": settings.broker_security_protocol,
            "TIERSTREAM_BROKER_CA_FILE": settings.broker_ca_file,
            "TIERSTREAM_REDIS_PASSWORD": settings.redis_password.get_secret_value(),
            "TIERSTREAM_REDIS_CA_FILE": settings.redis_ca_file,
            "TIERSTREAM_PARTITIONER": settings.partitioner,
        }
    )
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
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tierstream.cli", "run", *args],
            env=env,
            stdout=self.sink,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
        )

    def metrics(self) -> dict[str, float]:
        """Prometheus samples summed by name and label set ('name{labels}' -> value)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return {}
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def consumed(self) -> float:
        m = self.metrics()
        return sum(v for k, v in m.items() if k.startswith("tierstream_records_total"))

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
