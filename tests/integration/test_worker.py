"""`tierstream run` on the real local broker and redis-server.

The reference for a worker with N partitions is `simulate` on each partition's
records (each partition has its own clock): the same distinct output ids, the same
dead letters, the same final tiers — after a backlog, a kill -9, a Redis outage, and
with two workers sharing the partitions.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import SecretStr

from tierstream.settings import Settings
from tierstream.testing.backlog import (
    captured,
    dead_letters,
    final_tiers,
    make_bank,
    output_ids,
    publish,
    simulate_per_partition,
)
from tierstream.testing.localstack import free_port
from tierstream.testing.worker import WorkerProcess

pytestmark = pytest.mark.integration

RULES = "cmb"


def keyed_dead_letters(lines: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Dead letters of records that carry a customer id (the others go to any partition)."""
    return dead_letters([x for x in lines if x["topic"] != "tierstream.dlq" or x["value"]["key"]])


def assert_same_as_simulate(settings: Settings, events: Path, outputs: list[dict[str, Any]]) -> None:
    expected = simulate_per_partition(events, RULES, settings.partitions)
    assert output_ids(outputs) == output_ids(expected)
    assert final_tiers(outputs) == final_tiers(expected)
    assert sorted(set(keyed_dead_letters(outputs))) == sorted(set(keyed_dead_letters(expected)))


def split_bank(events: Path, tenths: int) -> tuple[Path, Path]:
    """The event file's first `tenths`/10 of lines and the rest, as two files beside it."""
    lines = events.read_bytes().splitlines(keepends=True)
    cut = len(lines) * tenths // 10
    first, rest = events.with_name("first.jsonl"), events.with_name("rest.jsonl")
    first.write_bytes(b"".join(lines[:cut]))
    rest.write_bytes(b"".join(lines[cut:]))
    return first, rest


def start(settings: Settings, tmp_path: Path, name: str = "worker") -> WorkerProcess:
    return WorkerProcess(settings, RULES, tmp_path / f"{name}.log")


def catch_up_a_bank(
    settings: Settings, tmp_path: Path
) -> tuple[Path, dict[str, float], list[dict[str, Any]]]:
    """60 customers x 40 days published, then applied by one worker to lag 0 and Redis
    written: the event file, the worker's metrics then, and the outputs."""
    events = tmp_path / "bank.jsonl"
    make_bank(events, customers=60, days=40, seed=5)
    sent = publish(settings, events)
    worker = start(settings, tmp_path)
    try:
        worker.wait_for(lambda: worker.consumed() >= sent, 180, f"{sent} records consumed")
        worker.wait_for(lambda: worker.lag() == 0, 30, "lag 0 in /metrics")
        worker.wait_for(
            lambda: worker.metrics().get("tierstream_redis_pending_customers", 1) == 0, 30, "Redis written"
        )
        served = worker.metrics()
        outputs = captured(settings)
    finally:
        worker.stop()
    return events, served, outputs


def test_backlog_catch_up_equals_simulate(settings: Settings, tmp_path: Path) -> None:
    events, served, outputs = catch_up_a_bank(settings, tmp_path)
    assert_same_as_simulate(settings, events, outputs)
    by_tier = {k: v for k, v in served.items() if k.startswith("tierstream_customers{")}
    assert sum(by_tier.values()) == 60  # every customer, counted once, by tier
    # segment changes are among the outputs equal to simulate's (cmb publishes segments),
    # and the gauge counts every customer whose grid cell was published, once
    segments = [x["value"] for x in outputs if x["topic"] == "customer.segment-changes"]
    assert {v["segment"] for v in segments} == {"lifecycle", "rfm", "grid"}
    by_grid = {
        k: v for k, v in served.items() if k.startswith('tierstream_customers_by_segment{segment="grid"')
    }
    assert sum(by_grid.values()) == len({v["customer_id"] for v in segments if v["segment"] == "grid"}) > 0
    assert by_tier['tierstream_customers{tier="gold"}'] == sum(
        1 for t in final_tiers(outputs).values() if t == "gold"
    )
    assert len(output_ids(outputs)) > 20  # the bank is worth testing: tier changes happened

    # Redis is a cache: wiped, it is rebuilt from the tables' changelog.
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    served_before = {k: client.hgetall(k) for k in client.scan_iter("tierstream:customer:*")}
    assert len(served_before) == 60
    client.flushdb()
    rebuilt = subprocess.run(
        [
            sys.executable,
            "-m",
            "tierstream.cli",
            "redis",
            "rebuild",
            "--rules",
            RULES,
            "--broker",
            settings.broker_url,
            "--redis",
            settings.redis_url,
            "--app-id",
            settings.app_id,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilt 60 customers" in rebuilt.stderr
    served_after = {k: client.hgetall(k) for k in client.scan_iter("tierstream:customer:*")}
    strip = lambda fields: {k: v for k, v in fields.items() if k != "updated_at"}  # noqa: E731
    assert {k: strip(v) for k, v in served_after.items()} == {k: strip(v) for k, v in served_before.items()}
    tiers = final_tiers(outputs)
    assert all(v["tier"] == tiers.get(k.rsplit(":", 1)[1], "standard") for k, v in served_after.items())
    counts = {k: int(v) for k, v in client.hgetall("tierstream:tier_counts").items()}
    assert sum(counts.values()) == 60


def test_a_decoded_budget_far_below_the_customers_spills_and_equals_simulate(
    settings: Settings, tmp_path: Path
) -> None:
    """8 customers decoded (2 a partition) of 60, small batches and commits: customers are
    spilled after batches and sweep slices, read back from their spilled state or the table
    while commits encode, and outputs, tiers and Redis still equal `simulate`'s."""
    settings = settings.model_copy(
        update={"decoded_customers": 8, "batch_size": 50, "commit_max_records": 200, "buffered_records": 100}
    )
    events, served, outputs = catch_up_a_bank(settings, tmp_path)
    assert_same_as_simulate(settings, events, outputs)
    assert served["tierstream_spilled_customers_total"] > 60, "the budget was kept by spilling"
    assert served["tierstream_decoded_customers"] <= 8
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    tiers = final_tiers(outputs)
    stored = {k.rsplit(":", 1)[1]: client.hget(k, "tier") for k in client.scan_iter("tierstream:customer:*")}
    assert len(stored) == 60
    assert stored == {cid: tiers.get(cid, "standard") for cid in stored}


def test_kill_minus_nine_mid_backlog_then_restart(settings: Settings, tmp_path: Path) -> None:
    events = tmp_path / "bank.jsonl"
    make_bank(events, customers=150, days=40, seed=9)
    sent = publish(settings, events)
    worker = start(settings, tmp_path, "first")
    worker.wait_for(lambda: worker.consumed() >= sent * 0.3, 180, "a third of the backlog")
    worker.kill()
    again = start(settings, tmp_path, "second")
    try:
        # After the restart the worker counts only what it consumed itself.
        again.wait_for(lambda: again.lag() == 0 and again.consumed() > 0, 240, "lag 0 after restart")
        outputs = captured(settings)
    finally:
        again.stop()
    assert_same_as_simulate(settings, events, outputs)


def test_redis_outage_slows_nothing_and_catches_up(
    settings: Settings, redis_server: Any, tmp_path: Path
) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    make_bank(first, customers=40, days=10, seed=21, noise=False, late=False)
    worker = start(settings, tmp_path)
    try:
        sent = publish(settings, first)
        worker.wait_for(lambda: worker.consumed() >= sent, 120, "first part consumed")
        redis_server.stop()
        make_bank(second, customers=40, days=20, seed=21, noise=False, late=False)
        more = publish(settings, second)  # the same customers, days 11-20 replayed again: duplicates + new
        worker.wait_for(lambda: worker.consumed() >= sent + more, 120, "second part consumed with Redis down")
        worker.wait_for(
            lambda: worker.metrics().get("tierstream_redis_write_failures_total", 0) > 0,
            30,
            "a counted Redis failure",
        )
        redis_server.restart()
        worker.wait_for(
            lambda: worker.metrics().get("tierstream_redis_pending_customers") == 0,
            60,
            "Redis brought up to date",
        )
        outputs = captured(settings)
    finally:
        worker.stop()
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    tiers = final_tiers(outputs)
    served = {k.split(":", 2)[2]: client.hget(k, "tier") for k in client.scan_iter("tierstream:customer:*")}
    assert len(served) == 40
    for cid, tier in served.items():
        assert tier == tiers.get(cid, "standard"), cid
    counts = {k: int(v) for k, v in client.hgetall("tierstream:tier_counts").items()}
    assert sum(counts.values()) == 40
    assert counts.get("gold", 0) == sum(1 for t in served.values() if t == "gold")


def get_json(port: int, path: str, token: str | None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_two_workers_share_the_partitions_and_answer_for_each_other(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"api_token": SecretStr("s3cret-token")})
    events = tmp_path / "bank.jsonl"
    make_bank(events, customers=80, days=30, seed=13)
    sent = publish(settings, events)
    other = settings.model_copy(update={"web_port": free_port()})
    a, b = start(settings, tmp_path, "a"), start(other, tmp_path, "b")
    try:
        a.wait_for(lambda: a.consumed() + b.consumed() >= sent, 240, "backlog consumed by both")
        assert a.consumed() > 0 and b.consumed() > 0, "both workers took partitions"
        outputs = captured(settings)
        tiers = final_tiers(outputs)
        customers = sorted({x["value"]["customer_id"] for x in outputs if x["topic"] != "tierstream.dlq"})
        # Every customer through worker a: those on b's partitions are proxied to b.
        for cid in customers:
            status, doc = get_json(settings.web_port, f"/customers/{cid}", "s3cret-token")
            assert status == 200, (cid, doc)
            assert doc["tier"] == tiers.get(cid, "standard")
        status, doc = get_json(other.web_port, f"/customers/{customers[0]}/explain", "s3cret-token")
        assert status == 200 and doc["customer_id"] == customers[0] and doc["conditions"]
        assert get_json(settings.web_port, f"/customers/{customers[0]}", None)[0] == 401
        assert get_json(settings.web_port, f"/customers/{customers[0]}", "wrong")[0] == 401
        assert get_json(settings.web_port, "/customers/NOBODY", "s3cret-token")[0] == 404
        assert "s3cret" not in a.tail(2000) and "s3cret" not in b.tail(2000)
    finally:
        a.stop()
        b.stop()
    assert_same_as_simulate(settings, events, outputs)


def test_rocksdb_store_keeps_state_across_a_restart(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"store": "rocksdb://", "loglevel": "INFO"})
    events = tmp_path / "bank.jsonl"
    make_bank(events, customers=60, days=30, seed=17)
    first, rest = split_bank(events, 6)
    sent = publish(settings, first)
    worker = start(settings, tmp_path, "first")
    try:
        # lag 0: committed (state in RocksDB, markers, acks), not only applied: commits run
        # in the background (docs/worker.md); the test checks recovery from the table, not
        # the stop's own final commit
        worker.wait_for(lambda: worker.consumed() >= sent and worker.lag() == 0, 180, "first part committed")
    finally:
        worker.stop()
    assert any((tmp_path / f"{settings.app_id}-data").rglob("CURRENT")), "RocksDB databases on disk"
    more = publish(settings, rest)
    again = start(settings, tmp_path, "second")
    try:
        again.wait_for(lambda: again.consumed() >= more, 180, "second part consumed after the restart")
        outputs = captured(settings)
    finally:
        again.stop()
    # The whole file's outputs: the second worker continued from the stored state.
    assert_same_as_simulate(settings, events, outputs)
    # RocksDB kept the changelog offsets: recovery started past the beginning.
    log = (tmp_path / "second.log").read_text("utf-8", "replace")
    table = log.split("active offsets at start of reading", 1)[1].split("Resuming flow", 1)[0]
    rows = [row.split("|") for row in table.splitlines() if row.count("|") == 4]
    offsets = [int(cells[3]) for cells in rows if cells[3].strip().isdigit()]
    assert len(offsets) == settings.partitions and min(offsets) > 0, table


def test_a_graceful_stop_commits_what_was_applied(settings: Settings, tmp_path: Path) -> None:
    """No commit falls due while the worker runs (an hour's interval, no record limit): the
    stop itself commits, so the next worker applies only what came after, and no output
    is sent twice."""
    never = settings.model_copy(update={"commit_interval_ms": 3_600_000, "commit_max_records": 10**9})
    events = tmp_path / "bank.jsonl"
    make_bank(events, customers=40, days=20, seed=31, noise=False, late=False)
    first, rest = split_bank(events, 7)
    sent = publish(settings, first)
    worker = start(never, tmp_path, "first")
    try:
        worker.wait_for(lambda: worker.consumed() >= sent, 180, "the first part applied")
    finally:
        worker.stop()
    assert worker.proc.returncode == 0, "stopped by SIGTERM, not killed after the grace period"
    more = publish(settings, rest)
    again = start(settings, tmp_path, "second")
    try:
        again.wait_for(lambda: again.consumed() >= more and again.lag() == 0, 180, "the rest committed")
        # applied, not every record handed over: a rebalance inside the second worker's
        # start may hand it its own records again, which its marker skips as duplicates
        applied = again.metrics()['tierstream_records_total{outcome="applied"}']
        outputs = captured(settings)
    finally:
        again.stop()
    assert applied == more, f"the second worker applied {applied - more:g} records the first had applied"
    sent_twice = len([x for x in outputs if x["topic"] != "tierstream.dlq"]) - len(output_ids(outputs))
    assert sent_twice == 0
    assert_same_as_simulate(settings, events, outputs)


def test_live_clock_ages_quiet_customers(settings: Settings, tmp_path: Path) -> None:
    """No new events: the timer moves the clock to wall time and sweeps day boundaries."""
    from datetime import UTC, datetime, timedelta

    rules = tmp_path / "rules.yaml"
    rules.write_text(
        'scheme: live\nversion: "l1"\ntiers:\n  - {id: base}\n  - {id: gold, any_of: ["avg_aum_30d >= 50000"]}\n'
        "churn: {dormant_after_days: 2}\n",
        "utf-8",
    )
    three_days_ago = (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0)
    events = tmp_path / "quiet.jsonl"
    events.write_text(
        json.dumps(
            {
                "topic": "bank.transactions",
                "value": {
                    "event_id": "q1",
                    "customer_id": "Q",
                    "account_id": "Q1",
                    "amount": "10.00",
                    "direction": "debit",
                    "channel": "atm",
                    "ts": three_days_ago.isoformat(),
                },
            }
        )
        + "\n",
        "utf-8",
    )
    settings = settings.model_copy(update={"live_clock": True, "sweep_interval_seconds": 1.0})
    publish(settings, events)
    worker = WorkerProcess(settings, str(rules), tmp_path / "live.log")
    try:
        worker.wait_for(lambda: worker.consumed() >= 1, 60, "the one event")
        worker.wait_for(
            lambda: worker.metrics().get('tierstream_outputs_total{type="churn_warning"}', 0) >= 1,
            60,
            "a dormant warning from the live clock",
        )
        outputs = captured(settings)
    finally:
        worker.stop()
    (warning,) = [x["value"] for x in outputs if x["topic"] == "customer.churn-warnings"]
    assert (warning["reason"], warning["customer_id"], warning["metrics"]["inactive_days"]) == (
        "dormant",
        "Q",
        2,
    )
    assert warning["effective_at"].endswith("T00:00:00+08:00")  # a day boundary, reached by the timer


def test_when_one_worker_stops_the_other_takes_over(settings: Settings, tmp_path: Path) -> None:
    events = tmp_path / "bank.jsonl"
    make_bank(events, customers=300, days=40, seed=23)
    sent = publish(settings, events)
    other = settings.model_copy(update={"web_port": free_port()})
    a, b = start(settings, tmp_path, "a"), start(other, tmp_path, "b")
    try:
        b.wait_for(lambda: b.consumed() > 0, 120, "the second worker taking partitions")
        assert a.consumed() + b.consumed() < sent, "stopped before the backlog was done"
        b.kill()  # its session expires; its partitions move to a, which resumes from their markers

        def a_owns_all_and_is_done() -> bool:
            lags = [v for k, v in a.metrics().items() if k.startswith("tierstream_consumer_lag")]
            return len(lags) == 3 * settings.partitions and sum(lags) == 0

        a.wait_for(a_owns_all_and_is_done, 45, "a owning every input topic-partition, lag 0")
        outputs = captured(settings)
    finally:
        a.stop()
        b.stop()
    assert_same_as_simulate(settings, events, outputs)


def test_rules_of_another_shape_are_refused_and_a_threshold_change_is_not(
    settings: Settings, tmp_path: Path
) -> None:
    events = tmp_path / "bank.jsonl"
    make_bank(events, customers=40, days=10, seed=31)
    sent = publish(settings, events)
    first = start(settings, tmp_path, "first")
    try:
        first.wait_for(lambda: first.consumed() >= sent, 120, f"{sent} records consumed")
        first.wait_for(lambda: first.lag() == 0, 30, "lag 0 in /metrics")
    finally:
        first.stop()
    cmb = (Path(__file__).parents[2] / "streams" / "presets" / "cmb.yaml").read_text(encoding="utf-8")

    reshaped = tmp_path / "cmb-silver.yaml"
    reshaped.write_text(
        cmb.replace(
            "  - {id: gold,",
            '  - {id: silver, label: 银卡, any_of: ["avg_aum_30d >= 20000"]}\n  - {id: gold,',
        ),
        encoding="utf-8",
    )
    refused = WorkerProcess(settings, str(reshaped), tmp_path / "refused.log")
    try:
        deadline = time.monotonic() + 90
        while refused.proc.poll() is None and time.monotonic() < deadline:
            refused.metrics()  # after recovery, /metrics loads each partition's marker
            time.sleep(0.5)
        assert refused.proc.returncode == 2, refused.tail()
    finally:
        refused.stop()
    log = (tmp_path / "refused.log").read_text(encoding="utf-8")
    assert "'silver'" in log and "new TIERSTREAM_APP_ID" in log
    assert "Traceback" not in log.split("tierstream: error:")[-1]

    raised = tmp_path / "cmb-60k.yaml"
    raised.write_text(cmb.replace("avg_aum_30d >= 50000", "avg_aum_30d >= 60000"), encoding="utf-8")
    again = WorkerProcess(settings, str(raised), tmp_path / "again.log")
    try:
        again.wait_for(lambda: again.lag() == 0, 90, "lag 0 under a threshold change")
        time.sleep(2)
        assert again.proc.poll() is None, again.tail()
    finally:
        again.stop()
