"""The consumer examples of docs/consuming.md, run as written against the local broker.

Each topic gets one partition here, so its records arrive in the order sent: every
output twice (a redelivery), then a tail record that tells the test the topic was
read to its end. Each example must hand every output to `handle` exactly once.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from tierstream.broker import client_kwargs, ensure_topics
from tierstream.settings import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = ("tier.changes", "tier.opportunities", "customer.churn-warnings")
EXAMPLE_OUTPUTS = ROOT / "tests" / "fixtures" / "examples" / "lifecycle.expected.jsonl"
EMITTED_AT = "2026-04-30T09:15:02+08:00"


class Done(Exception):
    """Raised inside the example's loop once every topic's tail record was checked."""


class CountingSeen(set[str]):
    """The examples' `seen`: counts the id checks, and ends the loop after the last tail."""

    def __init__(self, tails: set[str]) -> None:
        super().__init__()
        self.tails = tails
        self.checks = 0
        self.tails_checked: set[str] = set()

    def __contains__(self, item: object) -> bool:
        self.checks += 1
        if item in self.tails:
            self.tails_checked.add(str(item))
            if self.tails_checked == self.tails:
                raise Done
        return super().__contains__(item)


def _example(name: str) -> Any:
    text = (ROOT / "docs" / "consuming.md").read_text("utf-8")
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        namespace: dict[str, Any] = {}
        if f"def {name}(" in block:
            exec(compile(block, f"docs/consuming.md:{name}", "exec"), namespace)
            return namespace[name]
    raise AssertionError(f"docs/consuming.md has no {name}")


def _outputs() -> list[tuple[str, dict[str, Any]]]:
    records = []
    for line in EXAMPLE_OUTPUTS.read_text("utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            records.append((record["topic"], {**record["value"], "emitted_at": EMITTED_AT}))
    assert {topic for topic, _ in records} == set(OUTPUTS)
    return records


async def _publish(settings: Settings) -> tuple[list[tuple[str, str]], set[str], int]:
    """Every output twice, then a tail per topic; returns (topic, event_id) sent, the tails, records sent."""
    from aiokafka import AIOKafkaProducer

    await ensure_topics(settings, settings.output_topics, 1)
    producer = AIOKafkaProducer(**client_kwargs(settings))
    await producer.start()
    sent: list[tuple[str, str]] = []
    tails: set[str] = set()
    count = 0
    try:
        outputs = _outputs()
        for topic, value in outputs:
            for _ in range(2):
                await producer.send_and_wait(
                    settings.topic(topic), json.dumps(value).encode(), key=value["customer_id"].encode()
                )
                count += 1
            sent.append((topic, value["event_id"]))
        for i, topic in enumerate(OUTPUTS):
            value = next(v for t, v in outputs if t == topic)
            tail = {**value, "event_id": f"{i:032x}"}
            tails.add(tail["event_id"])
            await producer.send_and_wait(settings.topic(topic), json.dumps(tail).encode(), key=b"tail")
            count += 1
    finally:
        await producer.stop()
    return sent, tails, count


def _check(
    handled: list[tuple[str, str]], sent: list[tuple[str, str]], seen: CountingSeen, count: int
) -> None:
    real = [h for h in handled if h[1] not in seen.tails]
    assert sorted(real) == sorted(sent)  # each output once, though every one came twice
    assert seen.checks == count  # every record was read, duplicates included


def test_aiokafka_example_handles_each_output_once(settings: Settings) -> None:
    consume = _example("consume_aiokafka")
    sent, tails, count = asyncio.run(_publish(settings))
    handled: list[tuple[str, str]] = []
    seen = CountingSeen(tails)
    with pytest.raises(Done):
        asyncio.run(
            consume(
                ",".join(settings.bootstrap_servers),
                f"consumer-{uuid4().hex[:8]}",
                lambda topic, value: handled.append((topic, value["event_id"])),
                seen,
                settings.topic_prefix,
                session_timeout_ms=6000,
                heartbeat_interval_ms=1000,
            )
        )
    _check(handled, sent, seen, count)


def test_confluent_kafka_example_handles_each_output_once(settings: Settings) -> None:
    consume = _example("consume_confluent")
    sent, tails, count = asyncio.run(_publish(settings))
    handled: list[tuple[str, str]] = []
    seen = CountingSeen(tails)
    with pytest.raises(Done):
        consume(
            ",".join(settings.bootstrap_servers),
            f"consumer-{uuid4().hex[:8]}",
            lambda topic, value: handled.append((topic, value["event_id"])),
            seen,
            settings.topic_prefix,
            {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
        )
    _check(handled, sent, seen, count)
