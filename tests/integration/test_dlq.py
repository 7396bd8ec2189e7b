"""The dead-letter reprocessing path on the real local broker, as an operator walks it
(docs/operations.md, "Dead letters"): a worker dead-letters bad records with their
reasons → `tierstream capture` + a filter give the dead letters → the payloads are
fixed in the file → `tierstream dlq replay` refuses a record that is still bad (and
publishes nothing), then with --skip-invalid re-publishes the fixed ones to their
source topics keyed by customer_id → the worker applies them: balances and tiers
reflect the fixes, and nothing is dead-lettered again.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from pydantic import SecretStr

from tierstream.broker import client_kwargs
from tierstream.engine.partitioner import partition_for
from tierstream.settings import Settings
from tierstream.testing.worker import WorkerProcess
from tierstream.tools.kafkaio import capture, replay
from tierstream.tools.simulate import read_lines

pytestmark = pytest.mark.integration

TOKEN = "dlq-test-token"
RULES = """scheme: dlq-test
version: "d1"
tiers:
  - {id: base}
  - {id: gold, any_of: ["aum >= 50000"]}
"""
A, B = "DLQ-A", "DLQ-B"


def events(day: datetime) -> list[dict[str, Any]]:
    """Three good records, then three bad ones: a malformed amount, a transaction without
    customer_id (so published with no key), and a balance with a naive timestamp."""

    def at(minute: int) -> str:
        return (day + timedelta(minutes=minute)).isoformat()

    def balance(eid: str, cid: str, account: str, amount: str, ts: str) -> dict[str, Any]:
        value = {"event_id": eid, "customer_id": cid, "account_id": account, "product": "deposit"}
        return {"topic": "bank.balances", "value": {**value, "balance": amount, "ts": ts}}

    return [
        balance("a1", A, "A-1", "10000.00", at(0)),
        balance("b1", B, "B-1", "1000.00", at(1)),
        {
            "topic": "bank.profiles",
            "value": {"event_id": "p1", "customer_id": A, "attributes": {"segment": "retail"}, "ts": at(2)},
        },
        balance("a2", A, "A-2", "12O,000.00", at(3)),  # a letter O: bad_amount
        {
            "topic": "bank.transactions",
            "value": {  # no customer_id: schema_violation, and no key to go by
                "event_id": "t1",
                "account_id": "B-1",
                "amount": "79000.00",
                "direction": "credit",
                "channel": "mobile",
                "balance_after": "80000.00",
                "ts": at(4),
            },
        },
        balance("a3", A, "A-3", "5000.00", at(5)[:19]),  # no offset: naive_timestamp
    ]


def publish(settings: Settings, path: Path) -> int:
    with path.open("rb") as f:
        return asyncio.run(replay(settings, read_lines(f), None, False, log=lambda _: None))


def captured(settings: Settings) -> list[dict[str, Any]]:
    sink = io.StringIO()
    asyncio.run(capture(settings, sink, 2.0, log=lambda _: None))
    return [json.loads(x) for x in sink.getvalue().splitlines()]


def get_json(port: int, path: str) -> dict[str, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    request.add_header("Authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            doc: dict[str, Any] = json.loads(r.read())
            return doc
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"GET {path}: {exc.code} {exc.read()!r}") from None


def dlq_replay(settings: Settings, rules: Path, retry: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """The real command, as an operator runs it against the worker's broker and prefix."""
    env = {
        **os.environ,
        "TIERSTREAM_BROKER_URL": settings.broker_url,
        "TIERSTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "TIERSTREAM_RULES": str(rules),
    }
    return subprocess.run(
        [sys.executable, "-m", "tierstream.cli", "dlq", "replay", "--events", str(retry), *flags],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


async def input_records(settings: Settings, topic: str, customer: str) -> list[tuple[bytes | None, Any]]:
    """(key, value) of every record on the customer's partition of an input topic."""
    consumer = AIOKafkaConsumer(**client_kwargs(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(settings.topic(topic), partition_for(customer, settings.partitions))
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        out: list[tuple[bytes | None, Any]] = []
        for _ in range(5):
            batch = await consumer.getmany(tp, timeout_ms=1000)
            got = batch.get(tp, [])
            out += [(r.key, json.loads(r.value)) for r in got if r.value is not None]
            if not got and out:
                break
        return out
    finally:
        await consumer.stop()


def test_dead_letters_fixed_and_replayed_reach_the_customers(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, "utf-8")
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    day = datetime(yesterday.year, yesterday.month, yesterday.day, 10, tzinfo=timezone(timedelta(hours=8)))
    source = tmp_path / "events.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events(day)), "utf-8")
    sent = publish(settings, source)
    assert sent == 6

    worker = WorkerProcess(settings, str(rules), tmp_path / "worker.log")
    try:
        worker.wait_for(lambda: worker.consumed() >= sent, 120, f"{sent} records consumed")
        port = settings.web_port
        assert get_json(port, f"/customers/{A}")["tier"] == "base"
        assert get_json(port, f"/customers/{B}")["metrics"]["aum"] == "1000.00"

        # 1. The bad records are in the dead-letter topic, with their reasons.
        dead = [x["value"] for x in captured(settings) if x["topic"] == "tierstream.dlq"]
        by_error = {d["error"]: d for d in dead}
        assert sorted(by_error) == ["bad_amount", "naive_timestamp", "schema_violation"], dead
        assert len(dead) == 3
        assert {d["source_topic"] for d in dead} == {"bank.balances", "bank.transactions"}
        assert (by_error["bad_amount"]["key"], by_error["schema_violation"]["key"]) == (A, None)
        assert "customer_id" in by_error["schema_violation"]["detail"]

        # 2. The operator fixes the payloads (jq: .value.payload |= (fromjson | ... | tojson)).
        def fixed(error: str, **changes: Any) -> str:
            value = {
                **by_error[error],
                "payload": json.dumps({**json.loads(by_error[error]["payload"]), **changes}),
            }
            return json.dumps({"topic": "tierstream.dlq", "value": value}) + "\n"

        retry = tmp_path / "retry.jsonl"
        retry.write_text(
            fixed("bad_amount", balance="120000.00")
            + fixed("schema_violation", customer_id=B)
            + fixed("naive_timestamp", balance="6000.00"),  # the wrong thing fixed: ts still naive
            "utf-8",
        )

        # 3. A record still bad: refused by name, and nothing is published.
        refused = dlq_replay(settings, rules, retry)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.startswith(
            f"tierstream: error: {retry} line 3: the bank.balances record for customer {A} is still bad "
            "(naive_timestamp: "
        ), refused.stderr
        assert "nothing was published" in refused.stderr and refused.stderr.count("\n") == 1

        # 4. --skip-invalid publishes the two fixed records and names the one skipped.
        done = dlq_replay(settings, rules, retry, "--skip-invalid")
        assert done.returncode == 0, done.stderr
        assert "dlq replay: skipped line 3: the bank.balances record for customer DLQ-A" in done.stderr
        assert "dlq replay: published 2 records" in done.stderr
        assert "bank.balances 1, bank.transactions 1" in done.stderr

        # 5. The worker applies them: every record on the broker consumed, exactly 6 + 2.
        worker.wait_for(lambda: worker.consumed() >= sent + 2, 60, "the replayed records consumed")
        worker.wait_for(lambda: worker.lag() == 0, 30, "lag 0")
        assert worker.consumed() == sent + 2, "the refused run published nothing"
        a, b = get_json(port, f"/customers/{A}"), get_json(port, f"/customers/{B}")
        assert (a["tier"], a["metrics"]["aum"]) == ("gold", "130000.00")
        assert (b["tier"], b["metrics"]["aum"]) == ("gold", "80000.00")
        accounts = {
            x["account_id"]: x["closing_balance"]
            for x in get_json(port, f"/customers/{A}/explain")["accounts"]
        }
        assert accounts == {"A-1": "10000.00", "A-2": "120000.00"}
        outputs = captured(settings)
    finally:
        worker.stop()

    changes = sorted(
        (x["value"]["customer_id"], x["value"]["from_tier"], x["value"]["to_tier"])
        for x in outputs
        if x["topic"] == "tier.changes"
    )
    assert changes == [(A, "base", "gold"), (B, "base", "gold")]
    assert len([x for x in outputs if x["topic"] == "tierstream.dlq"]) == 3, "nothing dead-lettered again"

    # The replayed records went to the customer's partition, keyed by the fixed customer_id
    # (the transaction's dead letter had no key at all).
    balances = asyncio.run(input_records(settings, "bank.balances", A))
    txns = asyncio.run(input_records(settings, "bank.transactions", B))
    assert (A.encode(), "120000.00") in [
        (k, v.get("balance")) for k, v in balances if v.get("event_id") == "a2"
    ]
    assert [k for k, v in txns if v.get("event_id") == "t1" and v.get("customer_id") == B] == [B.encode()]
