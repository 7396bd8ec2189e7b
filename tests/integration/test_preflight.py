"""`tierstream run` on topics it does not expect, on the real local broker: each refusal is
one line and exit 2 before the worker joins its group, and creates no topic; what goes
against the docs' advice is a warning; the start-up and assignment lines are logged at
the default log level."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tierstream.broker import client_kwargs
from tierstream.engine.partitioner import partition_for
from tierstream.engine.rules import load_rules
from tierstream.settings import CUSTOMERS_TABLE, Settings
from tierstream.testing.backlog import make_bank
from tierstream.testing.worker import WorkerProcess, worker_env
from tierstream.tools.kafkaio import replay
from tierstream.tools.simulate import read_lines
from tierstream.worker.app import create_app

pytestmark = pytest.mark.integration

RULES = "cmb"


async def _create(settings: Settings, topics: dict[str, int], configs: dict[str, str] | None) -> None:
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(t, n, 1, topic_configs=configs or {}) for t, n in topics.items()]
        )
        assert all(e["error_code"] == 0 for e in response.to_object()["topic_errors"]), response
    finally:
        await admin.close()


def create(settings: Settings, topics: dict[str, int], configs: dict[str, str] | None = None) -> None:
    asyncio.run(_create(settings, topics, configs))


async def _partition_counts(settings: Settings) -> dict[str, int]:
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(None)}  # creates none
    finally:
        await admin.close()


def ours(settings: Settings) -> dict[str, int]:
    """The topics of this test that exist, with their partition counts."""
    counts = asyncio.run(_partition_counts(settings))
    return {
        t: n
        for t, n in counts.items()
        if t.startswith(settings.topic_prefix) or t == settings.changelog_topic
    }


def run_refused(settings: Settings, cwd: Path) -> str:
    """`tierstream run`, expected to refuse: exit 2, one line, no traceback. Returns the line."""
    done = subprocess.run(
        [sys.executable, "-m", "tierstream.cli", "run"],
        env=worker_env(settings, RULES),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tierstream: error: "), done.stderr
    return lines[0]


def test_inputs_of_another_count_than_the_setting(settings: Settings, tmp_path: Path) -> None:
    # The bank: inputs of 6 partitions holding records on partitions 4 and 5, the run set to 4.
    create(settings, dict.fromkeys(settings.input_topics, 6))
    events = tmp_path / "bank.jsonl"
    make_bank(events, customers=40, days=5, seed=16, noise=False, late=False)
    with events.open("rb") as f:
        assert asyncio.run(replay(settings, read_lines(f), None, False)) > 0
    customers = {json.loads(x)["value"]["customer_id"] for x in events.read_text("utf-8").splitlines()}
    assert {partition_for(c, 6) for c in customers} >= {4, 5}
    before = ours(settings)
    line = run_refused(settings, tmp_path)
    assert f"have 6 partitions but TIERSTREAM_PARTITIONS is {settings.partitions}" in line
    assert "set TIERSTREAM_PARTITIONS=6, or re-partition with export/bootstrap" in line
    assert ours(settings) == before  # no output topic, no changelog created


def test_inputs_that_differ_from_each_other(settings: Settings, tmp_path: Path) -> None:
    balances, transactions, profiles = settings.input_topics
    create(settings, {balances: 4, transactions: 6, profiles: 4})
    line = run_refused(settings, tmp_path)
    assert f"({balances} 4, {transactions} 6, {profiles} 4) and cannot be merged per partition" in line
    assert set(ours(settings)) == set(settings.input_topics)


def test_a_changelog_of_another_count(settings: Settings, tmp_path: Path) -> None:
    create(settings, dict.fromkeys(settings.input_topics, settings.partitions))
    create(settings, {settings.changelog_topic: 8}, {"cleanup.policy": "compact"})
    line = run_refused(settings, tmp_path)
    assert f"changelog topic {settings.changelog_topic} has 8 partitions" in line
    assert "TIERSTREAM_PARTITIONS=8" in line


def test_a_local_table_store_of_a_larger_count(settings: Settings, tmp_path: Path) -> None:
    create(settings, dict.fromkeys(settings.input_topics, settings.partitions))
    rocks = settings.model_copy(update={"store": "rocksdb://"})
    # Where Faust's RocksDB store keeps partition 7 of the table (relative to the worker's cwd).
    table = create_app(rocks).Table(CUSTOMERS_TABLE, partitions=8, key_type=bytes, value_type=bytes)
    (tmp_path / table.data.partition_path(7)).mkdir(parents=True)  # type: ignore[attr-defined]
    line = run_refused(rocks, tmp_path)
    assert "holds partition 7 of the customers table" in line
    assert f"but TIERSTREAM_PARTITIONS is {settings.partitions}" in line


def test_a_missing_input_is_named_and_not_created(settings: Settings, tmp_path: Path) -> None:
    balances, transactions, profiles = settings.input_topics
    create(settings, {transactions: 4, profiles: 4})
    line = run_refused(settings, tmp_path)
    assert f"input topic {balances} does not exist" in line
    assert f"--create --topic {balances} --partitions 4" in line and "--create-topics" in line
    assert set(ours(settings)) == {transactions, profiles}  # the check auto-created nothing


def test_warnings_start_up_and_assignment_lines(settings: Settings, tmp_path: Path) -> None:
    # Outputs that exist against the docs' advice; inputs missing, created by --create-topics.
    create(settings, dict.fromkeys(settings.output_topics, 6), {"cleanup.policy": "compact"})
    log = tmp_path / "worker.log"
    worker = WorkerProcess(settings, RULES, log, create_inputs=False, args=("--create-topics",))
    try:
        worker.wait_for(lambda: "partitions assigned:" in log.read_text("utf-8"), 120, "the assignment line")
    finally:
        worker.stop()
    text = log.read_text("utf-8")
    assert "Traceback" not in text
    assert settings.loglevel == "WARNING"  # the lines below show at the default level
    rules = load_rules(RULES)
    lines = text.splitlines()
    (startup,) = [n for n, x in enumerate(lines) if "starting: " in x]
    for phrase in (
        f"broker {settings.broker_url}",
        f"app id {settings.app_id}",
        f"rules {rules.scheme} {rules.version}",
        ", ".join(f"{t} (4)" for t in settings.input_topics),
        ", ".join(f"{t} (6)" for t in settings.output_topics),
        f"changelog {settings.changelog_topic} (new: 4)",
        "store memory://",
    ):
        assert phrase in lines[startup]
    assert f"created topics with 4 partitions: {', '.join(settings.input_topics)}" in text
    assert "another partition count than TIERSTREAM_PARTITIONS (4)" in text
    assert "are compacted" in text and "cleanup.policy=delete" in text
    assigned = next(n for n, x in enumerate(lines) if "partitions assigned:" in x)
    assert assigned > startup
    assert "partitions assigned: 0, 1, 2, 3 of 4" in lines[assigned]
    counts = ours(settings)
    assert {t: counts[t] for t in settings.input_topics} == dict.fromkeys(settings.input_topics, 4)
