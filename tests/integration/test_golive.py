"""Going live on the real broker (SPEC §9): bootstrap an app id from a warehouse
snapshot, a worker continues from the cut-over exactly as the offline reference; then
export, bootstrap a new app id with another partition count, and it continues too."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from tierstream.engine.decode import guess_customer, guess_key
from tierstream.engine.partition import PartitionEngine
from tierstream.engine.partitioner import partition_for
from tierstream.engine.rules import load_rules
from tierstream.golive.load import open_source
from tierstream.golive.snapshot import write_snapshot
from tierstream.settings import Settings
from tierstream.testing.backlog import captured, make_bank, output_ids, publish
from tierstream.testing.golive import Lines, split
from tierstream.testing.localstack import free_port
from tierstream.testing.worker import WorkerProcess
from tierstream.tools.simulate import output_line, read_lines, simulate

pytestmark = pytest.mark.integration
RULES = "cmb"


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        {
            "TIERSTREAM_BROKER_URL": settings.broker_url,
            "TIERSTREAM_APP_ID": settings.app_id,
            "TIERSTREAM_TOPIC_PREFIX": settings.topic_prefix,
            "TIERSTREAM_PARTITIONS": str(settings.partitions),
            "TIERSTREAM_RULES": RULES,
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "tierstream.cli", *args], env=env, capture_output=True, text=True, timeout=180
    )


def customer_of(line: bytes) -> str | None:
    value = json.loads(line).get("value")
    cid = guess_key(value) if isinstance(value, str) else guess_customer(value)
    return cid if isinstance(cid, str) else None


def reference(directory: Path, as_of: str | None, tail: Lines, partitions: int) -> list[dict[str, Any]]:
    """What the worker must produce: per partition, an engine started from the snapshot's
    customers of that partition, then that partition's records, in file order."""
    rules = load_rules(RULES)
    source = open_source(directory, rules, as_of)
    engines: dict[int, PartitionEngine] = {}
    for p in range(partitions):
        engines[p] = PartitionEngine(rules)
        engines[p].start_at(source.clock)
    for _, record in source.records:
        engine = engines[partition_for(record.customer_id, partitions)]
        engine.customers[record.customer_id] = engine.seed(record)
    by_partition: dict[int, Lines] = defaultdict(list)
    for number, line in tail:
        cid = customer_of(line)
        if cid is not None:
            by_partition[partition_for(cid, partitions)].append((number, line))
    sink = io.StringIO()
    for p, engine in engines.items():
        simulate(rules, by_partition[p], lambda o: sink.write(output_line(o)), engine=engine)
    return [json.loads(x) for x in sink.getvalue().splitlines()]


def same_outputs(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Output ids equal; on a difference, say which outputs (customer, type, instant)."""

    def index(lines: list[dict[str, Any]]) -> dict[str, tuple[str, str, str]]:
        return {
            x["value"]["event_id"]: (
                x["value"]["customer_id"],
                x["value"]["type"],
                x["value"]["effective_at"],
            )
            for x in lines
            if x["topic"] != "tierstream.dlq"
        }

    a, b = index(got), index(expected)
    extra = sorted(a[k] for k in a.keys() - b.keys())
    missing = sorted(b[k] for k in b.keys() - a.keys())
    assert not extra and not missing, f"extra {extra[:8]} missing {missing[:8]}"


def write_lines(path: Path, lines: Lines) -> Path:
    path.write_bytes(b"".join(line + b"\n" for _, line in lines))
    return path


def run_until_caught_up(settings: Settings, tmp_path: Path, name: str, sent: int) -> list[dict[str, Any]]:
    # INFO: a failure shows the table recovery in the log's tail
    worker = WorkerProcess(settings.model_copy(update={"loglevel": "INFO"}), RULES, tmp_path / f"{name}.log")
    try:
        worker.wait_for(lambda: worker.consumed() >= sent, 180, f"{sent} records consumed")
        worker.wait_for(lambda: worker.lag() == 0, 60, "lag 0")
        return captured(settings)
    finally:
        worker.stop()


def test_bootstrap_from_a_snapshot_then_export_to_another_partition_count(
    settings: Settings, tmp_path: Path
) -> None:
    rules = load_rules(RULES)
    cal = PartitionEngine(rules).calendar
    bank = tmp_path / "bank.jsonl"
    make_bank(bank, customers=80, days=45, seed=21)
    with bank.open("rb") as f:
        lines = list(read_lines(f))
    x1, x2 = "2026-01-22", "2026-01-30"
    end1 = cal.boundary(cal.day_from_text(x1) + 1) - 1
    end2 = cal.boundary(cal.day_from_text(x2) + 1) - 1
    head, rest = split(lines, end1, drop_repeats=False)
    middle, _ = split(rest, end2, drop_repeats=False)
    _, tail2 = split(lines, end2, drop_repeats=False)
    snap = tmp_path / "snap"
    write_snapshot(rules, iter(head), end1, snap)

    # Kafka holds the last days: records before and after the cut-over.
    sent = publish(settings, write_lines(tmp_path / "a.jsonl", head + middle))
    cut_over = cal.isoformat(end1 + 1)
    done = cli(settings, "bootstrap", "--snapshot", str(snap), "--as-of", x1, "--from", cut_over)
    assert done.returncode == 0, done.stderr
    assert "bootstrapped app id" in done.stderr and "80 customers" in done.stderr
    again = cli(settings, "bootstrap", "--snapshot", str(snap), "--as-of", x1, "--from", cut_over)
    assert again.returncode == 2 and "already has tables" in again.stderr and "Traceback" not in again.stderr

    outputs = run_until_caught_up(settings, tmp_path, "a", sent)
    expected = reference(snap, x1, middle, settings.partitions)
    same_outputs(outputs, expected)
    assert len(output_ids(expected)) > 10
    assert not [
        o for o in outputs if o["value"].get("effective_at", "9") < cut_over
    ]  # none before the cut-over

    exported = tmp_path / "export"
    done = cli(settings, "export", "--out", str(exported))
    assert done.returncode == 0, done.stderr
    assert json.loads((exported / "manifest.json").read_text())["customers"] == 80

    moved = settings.model_copy(
        update={"topic_prefix": f"t{uuid4().hex[:8]}.", "app_id": f"it-{uuid4().hex[:8]}", "partitions": 2,
                "web_port": free_port()}
    )  # fmt: skip
    done = cli(moved, "bootstrap", "--snapshot", str(exported), "--from", cal.isoformat(end2 + 1))
    assert done.returncode == 0, done.stderr
    sent = publish(moved, write_lines(tmp_path / "b.jsonl", tail2))
    outputs = run_until_caught_up(moved, tmp_path, "b", sent)
    expected = reference(exported, None, tail2, 2)
    same_outputs(outputs, expected)
    assert len(output_ids(expected)) > 10
