"""The worker's Redis writer over a recording stand-in client (no Redis)."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

import pytest

from tierstream.engine import codec
from tierstream.engine.partition import PartitionEngine
from tierstream.engine.rules import load_rules
from tierstream.serving import CUSTOMER_KEY
from tierstream.settings import Settings
from tierstream.worker import cache
from tierstream.worker.cache import RedisServing
from tierstream.worker.metrics import WorkerMetrics


class Pipeline:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.commands: list[tuple[str, Any]] = []

    async def __aenter__(self) -> Pipeline:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None

    def hset(self, key: str, mapping: dict[str, str]) -> None:
        self.commands.append(("hset", (key, dict(mapping))))

    def set(self, key: str, value: str, nx: bool) -> None:
        self.commands.append(("set", key))

    def hgetall(self, key: str) -> None:
        self.commands.append(("hgetall", key))

    async def execute(self) -> list[Any]:
        if self.client.fail_after is not None and len(self.client.executed) >= self.client.fail_after:
            raise ConnectionError("redis away")
        self.client.executed.append(self.commands)
        return [True if name == "set" else {} if name == "hgetall" else 1 for name, _ in self.commands]


class Client:
    def __init__(self) -> None:
        self.executed: list[list[tuple[str, Any]]] = []
        self.fail_after: int | None = None

    async def write_customers(self, client: Client, customers: list[tuple[str, dict[str, str]]]) -> None:
        """`serving.write_customers`' stand-in: one round trip a slice, like a pipeline."""
        pipe = Pipeline(client)
        for cid, fields in customers:
            pipe.hset(CUSTOMER_KEY.format(cid), fields)
        await pipe.execute()

    def pipeline(self, transaction: bool) -> Pipeline:
        return Pipeline(self)

    async def hset(self, key: str, mapping: dict[str, str]) -> None:
        return None


def serving(monkeypatch: pytest.MonkeyPatch) -> tuple[RedisServing, PartitionEngine, Client]:
    rules = load_rules("cmb")
    settings = Settings(partitions=2)
    redis = RedisServing(settings, rules, WorkerMetrics())
    client = Client()
    redis.client = client  # type: ignore[assignment]
    redis.write_customers = client.write_customers  # type: ignore[assignment]
    monkeypatch.setattr(cache, "FLUSH_SLICE", 2)
    return redis, PartitionEngine(rules, eager=False), client


def test_customers_are_read_when_noted_states_when_written_and_in_slices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redis, engine, client = serving(monkeypatch)
    customers = [(f"c{i}", engine.ledger.new_customer(19675, 0)) for i in range(2)]
    redis.note_customers(engine, customers)
    customers[0][1].tier = 1  # changed after it was noted: what is written is what it was then
    assert all(isinstance(p, dict) for p in redis.pending.values()), "no decoded customer kept alive"
    spilled = engine.ledger.new_customer(19675, 0)
    spilled.tier = 2
    redis.note_states(engine, [("c2", codec.encode(spilled, engine.ledger.specs, 0))])
    assert asyncio.run(redis.flush())
    hsets = [[key for name, (key, _) in pipe if name == "hset"] for pipe in client.executed[:2]]
    assert hsets == [[CUSTOMER_KEY.format("c0"), CUSTOMER_KEY.format("c1")], [CUSTOMER_KEY.format("c2")]]
    tiers = load_rules("cmb").tier_ids
    assert client.executed[0][0][1][1]["tier"] == tiers[0]
    assert client.executed[1][0][1][1]["tier"] == tiers[2], "an encoded state is decoded when written"
    assert redis.pending == {}


def test_a_failed_flush_keeps_every_customer_pending_as_noted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redis, engine, client = serving(monkeypatch)
    customers = [(f"c{i}", engine.ledger.new_customer(19675, 0)) for i in range(3)]
    redis.note_states(engine, [(cid, codec.encode(c, engine.ledger.specs, 0)) for cid, c in customers])
    client.fail_after = 1  # the second slice fails
    assert not asyncio.run(redis.flush())
    assert set(redis.pending) == {"c0", "c1", "c2"}
    noted = redis.pending["c0"]
    assert isinstance(noted, tuple) and noted[0] is engine, "a state is kept encoded, not as fields"
    client.fail_after = None
    redis.note_customers(engine, [customers[2]])  # noted again: replaced
    assert asyncio.run(redis.flush()) and redis.pending == {}
