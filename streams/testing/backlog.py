"""Helpers for worker tests: run `tierstream run` as a process, wait for it, compare
its outputs with `simulate` run per partition (each partition has its own clock)."""

from __future__ import annotations

import asyncio
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..contract import INPUT_TOPICS
from ..engine.decode import guess_customer, guess_key
from ..engine.evaluate import Output
from ..engine.partition import PartitionEngine
from ..engine.partitioner import partition_for
from ..engine.rules import load_rules
from ..settings import Settings
from ..tools.generate import generate_events, write_events
from ..tools.kafkaio import capture, replay
from ..tools.simulate import output_line, read_lines, simulate


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
            if doc.get("topic") not in INPUT_TOPICS:
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
