"""replay and capture against the real broker; the local servers start, stop and restart.

Replay must deliver every input line exactly once, keyed by customer, with record
timestamps that carry the file's order (the worker merges topics by them); capture
must return exactly what is on the output topics, even a topic created while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord, TopicPartition

from tierstream.broker import ensure_topics
from tierstream.engine.decode import INPUT_TOPICS, guess_key
from tierstream.engine.jsonio import NotJson, dumps_compact, loads
from tierstream.engine.timeutil import parse_instant
from tierstream.settings import Settings
from tierstream.testing.localstack import LocalStackError, Proc, start_broker, start_redis
from tierstream.tools.generate import generate_events, write_events
from tierstream.tools.kafkaio import capture, replay
from tierstream.tools.simulate import read_lines

pytestmark = pytest.mark.integration


def _quiet(_: str) -> None:
    pass


def _expected(path: Path) -> list[tuple[str, bytes | None, bytes, int | None]]:
    """(topic, key, payload, event ts in ms) of every line replay must publish, in file order."""
    out = []
    with path.open("rb") as f:
        for _, line in read_lines(f):
            try:
                doc = loads(line.decode("utf-8"))
            except (UnicodeDecodeError, NotJson):
                continue
            if not isinstance(doc, dict) or doc.get("topic") not in INPUT_TOPICS or "value" not in doc:
                continue
            value = doc["value"]
            if isinstance(value, str):
                payload = value.encode("utf-8")
                try:
                    inner = loads(value)
                except NotJson:
                    inner = None
            else:
                payload, inner = dumps_compact(value).encode("utf-8"), value
            cid = (
                inner.get("customer_id")
                if isinstance(inner, dict)
                else (guess_key(value) if isinstance(value, str) else None)
            )
            ts_ms = None
            if isinstance(inner, dict) and isinstance(inner.get("ts"), str):
                with contextlib.suppress(ValueError):
                    ts_ms = parse_instant(inner["ts"]) // 1000
            out.append((doc["topic"], cid.encode() if isinstance(cid, str) else None, payload, ts_ms))
    return out


async def _read_all(
    settings: Settings, topics: Iterable[str], count: int, timeout: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of `topics` from offset 0, until `count` arrived (end offsets can't be trusted)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(recs)
        # Anything beyond `count` would be a duplicate: give it a moment to show up.
        for recs in (await consumer.getmany(timeout_ms=500)).values():
            records.extend(recs)
        return records
    finally:
        await consumer.stop()


@pytest.fixture
def noisy_bank(tmp_path: Path) -> Path:
    path = tmp_path / "bank.jsonl"
    with path.open("w", encoding="utf-8") as f:
        write_events(generate_events(30, 5, 1, noise=True), f)
    return path


@pytest.mark.asyncio
async def test_replay_publishes_every_input_line_once_keyed_in_file_order(
    settings: Settings, noisy_bank: Path
) -> None:
    expected = _expected(noisy_bank)
    with noisy_bank.open("rb") as f:
        sent = await replay(settings, read_lines(f), None, False, log=_quiet)
    assert sent == len(expected)

    records = await _read_all(settings, settings.input_topics, len(expected))
    assert len(records) == len(expected)
    # Timestamps are unique across the replay, so sorting by them gives back the file order.
    records.sort(key=lambda r: r.timestamp)
    stamps = [r.timestamp for r in records]
    assert all(a < b for a, b in itertools.pairwise(stamps))
    prefix = settings.topic_prefix
    assert [(r.topic, r.key, r.value) for r in records] == [(prefix + t, k, v) for t, k, v, _ in expected]

    # The timestamp is the emission-order time: the running max of event ts, nudged up by 1 ms at most
    # per record when it would not increase.
    high = None
    for record, (_, _, _, ts_ms) in zip(records, expected, strict=True):
        if ts_ms is not None:
            high = ts_ms if high is None else max(high, ts_ms)
        if high is not None:
            assert high <= record.timestamp < high + 1000
    # Within each partition, offsets follow the timestamps, and a customer stays on one partition
    # number across the three topics (co-partitioned inputs).
    by_partition: dict[tuple[str, int], list[ConsumerRecord[bytes, bytes]]] = {}
    partition_of: dict[bytes, set[int]] = {}
    for r in records:
        by_partition.setdefault((r.topic, r.partition), []).append(r)
        if r.key is not None:
            partition_of.setdefault(r.key, set()).add(r.partition)
    for recs in by_partition.values():
        assert [r.offset for r in recs] == sorted(r.offset for r in recs)
    assert all(len(parts) == 1 for parts in partition_of.values())
    assert len({r.partition for r in records}) > 1


@pytest.mark.asyncio
async def test_replay_timestamps_follow_emission_order(settings: Settings) -> None:
    def txn(eid: str, ts: str) -> dict[str, Any]:
        return {
            "topic": "bank.transactions",
            "value": {
                "event_id": eid,
                "customer_id": "C1",
                "account_id": "C1-D1",
                "ts": ts,
                "amount": "1.00",
                "direction": "debit",
                "channel": "pos",
            },
        }

    t0 = parse_instant("2026-03-01T09:00:00+08:00") // 1000
    lines = [
        {"topic": "bank.transactions", "value": "not json at all"},  # before any ts: just before the first
        {
            "topic": "bank.balances",
            "value": '{"customer_id":"C1","ts":"2026-03-01T09:00:00"}',
        },  # naive: no ts
        txn("e1", "2026-03-01T09:00:00+08:00"),
        txn("e2", "2026-03-01T08:00:00+08:00"),  # late: emitted now, after e1
        txn("e3", "2026-03-01T09:00:00+08:00"),  # same instant as e1: still strictly later
        txn("e4", "2026-03-01T09:00:05.5+08:00"),
    ]
    await replay(
        settings, [(i, json.dumps(x).encode()) for i, x in enumerate(lines)], None, False, log=_quiet
    )
    records = await _read_all(settings, settings.input_topics[:2], len(lines))
    records.sort(key=lambda r: r.timestamp)
    assert [r.timestamp - t0 for r in records] == [-2, -1, 0, 1, 2, 5500]
    assert [r.key for r in records] == [None, b"C1", b"C1", b"C1", b"C1", b"C1"]


@pytest.mark.asyncio
async def test_replay_creates_input_topics_with_the_configured_partitions(settings: Settings) -> None:
    line = json.dumps(
        {
            "topic": "bank.profiles",
            "value": {
                "event_id": "p1",
                "customer_id": "C1",
                "ts": "2026-03-01T09:00:00+08:00",
                "attributes": {"vip": True},
            },
        }
    )
    await replay(settings, [(0, line.encode())], None, False, log=_quiet)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    await consumer.start()
    try:
        for topic in settings.input_topics:
            assert consumer.partitions_for_topic(topic) == set(range(settings.partitions))
    finally:
        await asyncio.sleep(0)  # stopping before the consumer's first task step raises (aiokafka #647)
        await consumer.stop()


@pytest.mark.asyncio
async def test_replay_live_shifts_event_times_to_now(settings: Settings) -> None:
    raw_ok = '{"event_id":"r1","customer_id":"C2","ts":"2026-03-01T10:00:00.250Z","product":"fund","balance":"1.00","account_id":"C2-F1"}'
    lines = [
        {
            "topic": "bank.balances",
            "value": {
                "event_id": "b1",
                "customer_id": "C1",
                "account_id": "C1-D1",
                "product": "deposit",
                "balance": "10.00",
                "ts": "2026-03-01T09:00:00+08:00",
            },
        },
        {"topic": "bank.balances", "value": raw_ok},
        {"topic": "bank.transactions", "value": "<html>502</html>"},
        {"topic": "bank.transfers", "value": {"customer_id": "C1"}},  # not an input: skipped
    ]
    before = time.time()
    sent = await replay(
        settings, [(i, json.dumps(x).encode()) for i, x in enumerate(lines)], None, True, log=_quiet
    )
    assert sent == 3
    records = await _read_all(settings, settings.input_topics[:2], 3)
    records.sort(key=lambda r: r.timestamp)
    assert len(records) == 3
    for r in records:
        assert before * 1000 - 5 <= r.timestamp <= time.time() * 1000 + 5
    first, raw, html = (r.value for r in records)
    first_ts = json.loads(first)["ts"]
    assert first_ts.endswith("+08:00") and len(first_ts) == len("2026-03-01T09:00:00+08:00")
    shifted = parse_instant(first_ts) / 1e6
    assert abs(shifted - before) < 5
    # The raw payload keeps every byte but its ts; the ts keeps its Z and fraction and moves as much.
    raw_ts = json.loads(raw)["ts"]
    assert raw == raw_ok.replace("2026-03-01T10:00:00.250Z", raw_ts).encode()
    assert raw_ts.endswith(".250Z")
    moved = parse_instant(raw_ts) - parse_instant("2026-03-01T10:00:00.250Z")
    assert moved == parse_instant(first_ts) - parse_instant("2026-03-01T09:00:00+08:00")
    assert html == b"<html>502</html>"


async def _produce(settings: Settings, topic: str, values: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        for v in values:
            await producer.send_and_wait(
                settings.topic(topic), json.dumps(v).encode(), key=str(v["customer_id"]).encode()
            )
    finally:
        await producer.stop()


@pytest.mark.asyncio
async def test_capture_returns_exactly_the_output_records(settings: Settings) -> None:
    await ensure_topics(settings, settings.output_topics[:1], 4)
    changes = [{"type": "tier_changed", "customer_id": f"C{i}", "to_tier": "gold", "n": i} for i in range(5)]
    dead = [
        {"source_topic": "bank.balances", "customer_id": f"D{i}", "error": "bad_amount"} for i in range(2)
    ]
    await _produce(settings, "tier.changes", changes)
    other = settings.model_copy(update={"topic_prefix": settings.topic_prefix + "other."})
    await _produce(other, "tier.changes", [{"customer_id": "X"}])  # another tenant: not captured
    out = io.StringIO()

    async def late_dead_letters() -> None:
        # A topic created while capture runs is found, and re-assigning loses or repeats nothing.
        await asyncio.sleep(1.3)
        await _produce(settings, "tierstream.dlq", dead)

    n, _ = await asyncio.gather(capture(settings, out, 3.5, log=_quiet), late_dead_letters())
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert n == len(lines) == 7
    got = sorted(lines, key=lambda x: (x["topic"], x["value"]["customer_id"]))
    assert got == (
        [{"topic": "tier.changes", "value": v} for v in changes]
        + [{"topic": "tierstream.dlq", "value": v} for v in dead]
    )


@pytest.mark.asyncio
async def test_capture_of_nothing_stops_after_the_idle_time(settings: Settings) -> None:
    began = time.monotonic()
    assert await capture(settings, io.StringIO(), 1.0, log=_quiet) == 0
    assert 0.9 < time.monotonic() - began < 5
    # Capture asked about no topic by name, so it created none.
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    await consumer.start()
    try:
        assert not {t for t in await consumer.topics() if t.startswith(settings.topic_prefix)}
    finally:
        await consumer.stop()


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierstream.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def test_cli_replay_then_capture(settings: Settings, tmp_path: Path) -> None:
    events = tmp_path / "in.jsonl"
    events.write_text(
        json.dumps(
            {
                "topic": "bank.profiles",
                "value": {
                    "event_id": "p1",
                    "customer_id": "C1",
                    "ts": "2026-03-01T09:00:00+08:00",
                    "attributes": {},
                },
            }
        )
        + "\n"
    )
    env = {"TIERSTREAM_TOPIC_PREFIX": settings.topic_prefix, "TIERSTREAM_PARTITIONS": "4"}
    result = _cli("replay", "--events", str(events), "--broker", settings.broker_url, env=env)
    assert result.returncode == 0, result.stderr
    assert "published 1 records" in result.stderr
    out = tmp_path / "out.jsonl"
    result = _cli(
        "capture",
        "--out",
        str(out),
        "--idle-seconds",
        "0.5",
        env={**env, "TIERSTREAM_BROKER_URL": settings.broker_url},
    )
    assert result.returncode == 0, result.stderr
    assert out.read_text() == ""


def test_redis_starts_restarts_on_the_same_port_and_stops(tmp_path: Path) -> None:
    proc: Proc = start_redis(tmp_path)
    try:
        assert proc.url == f"redis://127.0.0.1:{proc.port}/0"
        client = redis.Redis.from_url(proc.url, socket_timeout=2)
        client.set("k", "v")
        assert client.get("k") == b"v"
        pid = proc.pid
        proc.restart()
        assert proc.pid != pid and proc.url.endswith(f":{proc.port}/0")
        assert client.ping() and client.get("k") is None  # a cache with no persistence: empty again
        proc.kill()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        proc.restart(down_seconds=0.1)
        assert client.ping()
        client.close()
    finally:
        proc.stop()
    assert not proc.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_broker_starts_fast_refuses_a_taken_port_and_dies_by_pid(tmp_path: Path, broker: Proc) -> None:
    with pytest.raises(LocalStackError, match="already in use"):
        start_broker(tmp_path, port=broker.port)
    proc = start_broker(tmp_path)
    try:
        assert proc.started_in < 5
        assert proc.url == f"kafka://127.0.0.1:{proc.port}"
        pid = proc.pid
        proc.kill()
        assert not proc.running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert "listening on" in proc.log_path.read_text()
    finally:
        proc.stop()
    assert broker.running  # the session's broker was not touched


@pytest.mark.asyncio
async def test_replay_sends_a_lone_surrogate_as_the_bytes_a_broken_producer_would(settings: Settings) -> None:
    lines = [
        (0, b'{"topic":"bank.transactions","value":"\\ud800{}"}'),
        (1, b'{"topic":"bank.profiles","value":{"customer_id":"\\udc00","ts":"x"}}'),
    ]
    assert await replay(settings, lines, None, False, log=_quiet) == 2
    records = await _read_all(settings, settings.input_topics[1:], 2)
    assert sorted(((r.key, r.value) for r in records), key=lambda kv: kv[1]) == [
        (b"\xed\xb0\x80", b'{"customer_id":"\xed\xb0\x80","ts":"x"}'),
        (None, b"\xed\xa0\x80{}"),
    ]
