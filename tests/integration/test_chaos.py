"""The bounded forms of `make chaos` (bench/chaos.py): scenarios on a small bank, on the
session's broker. Each one checks every record accounted for, the outputs id for id
against `simulate` per partition, the tables after recovery and Redis against them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis

from bench.chaos import RULES, SCENARIOS, Lab, Outcome, Run, Size, bank, check, ready
from tierstream.testing.backlog import publish, reference_per_partition
from tierstream.testing.localstack import Proc

pytestmark = pytest.mark.integration

SMALL = Size(customers=30, days=20, patience=150)


@pytest.fixture
def lab(broker: Proc, tmp_path: Path) -> Lab:
    return Lab(SMALL, seed=15, broker=broker, workdir=tmp_path)


@pytest.mark.parametrize("number", ["1", "4", "6"])
def test_scenario_passes(lab: Lab, number: str) -> None:
    name, scenario = SCENARIOS[number]
    out = Outcome(name)
    scenario(lab, out)
    assert out.passed, out.problems
    assert out.faults and out.records > 0 and out.outputs_checked > 0


def test_the_checks_see_a_wrong_reference_and_a_stale_cache(lab: Lab) -> None:
    """The checks can fail: a bank the worker never saw, and a customer missing from Redis."""
    run = Run(lab, "negative")
    try:
        events = bank(run, 3, customers=20, days=10)
        sent = publish(run.settings, events)
        w = run.worker()
        run.wait(lambda: ready(w), 120, "ready")
        run.wait_caught_up(sent)
        good = Outcome("same bank")
        check(run, sent, reference_per_partition(events, RULES, 4), good, exact_counts=True)
        assert good.passed, good.problems

        client = redis.Redis.from_url(run.settings.redis_url)
        client.delete(next(iter(client.scan_iter("tierstream:customer:*"))))
        client.close()
        wrong = bank(run, 4, customers=20, days=10, name="wrong")
        bad = Outcome("another bank")
        check(run, sent, reference_per_partition(wrong, RULES, 4), bad, exact_counts=True)
    finally:
        run.stop_all()
    assert not bad.passed
    assert any("outputs" in p for p in bad.problems)
    assert any(p.startswith("Redis:") for p in bad.problems)
    assert any("table state" in p or "customers missing" in p or "clock" in p for p in bad.problems)


def test_a_state_written_without_its_marker_is_counted(lab: Lab) -> None:
    """Found by scenario 1 (a kill -9 while commits run back to back): a crash between a
    commit's state writes and its marker leaves a customer in the table that the marker's
    tier counts do not include, and its redelivered records are duplicates, so nothing
    counted it again. The restarted worker counts its customers from their states."""
    from aiokafka import AIOKafkaProducer

    from tierstream.engine import codec
    from tierstream.engine.partitioner import partition_for

    run = Run(lab, "unmarked")
    try:
        events = bank(run, 5, customers=20, days=10)
        sent = publish(run.settings, events)
        w = run.worker()
        run.wait(lambda: ready(w), 120, "ready")
        run.wait_caught_up(sent)
        w.stop()
        engine = next(iter(reference_per_partition(events, RULES, 4).engines.values()))
        customer = next(iter(engine.customers.values()))
        partition = partition_for("UNMARKED", 4)
        state = codec.encode(customer, engine.ledger.specs, partition)

        async def write_state_without_marker() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=run.settings.bootstrap_servers)
            await producer.start()
            try:
                await producer.send_and_wait(run.settings.changelog_topic, state, b"UNMARKED", partition)
            finally:
                await producer.stop()

        asyncio.run(write_state_without_marker())
        again = run.worker()
        run.wait(lambda: ready(again), 120, "ready after the crash")

        def counted() -> float:
            m = again.metrics()
            return sum(v for k, v in m.items() if k.startswith("tierstream_customers{"))

        run.wait(lambda: counted() == 21, 60, "21 customers counted by tier")
        client = redis.Redis.from_url(run.settings.redis_url, decode_responses=True)
        run.wait(
            lambda: sum(int(n) for n in client.hgetall("tierstream:tier_counts").values()) == 21,
            60,
            "21 customers in Redis's tier counts",
        )
        client.close()
    finally:
        run.stop_all()


def test_customers_committed_but_not_served_are_served_by_the_next_owner(lab: Lab) -> None:
    """Found by scenarios 2 and 3b: a worker that dies (or loses its partitions) after a
    commit but before its Redis write leaves those customers stale in Redis; their records
    are not redelivered, so nothing served them again. The next owner of a partition serves
    its customers from the tables when it loads them."""
    run = Run(lab, "unserved")
    try:
        events = bank(run, 6, customers=20, days=10)
        sent = publish(run.settings, events)
        w = run.worker()
        run.wait(lambda: ready(w), 120, "ready")
        run.wait_caught_up(sent)
        w.stop()
        client = redis.Redis.from_url(run.settings.redis_url, decode_responses=True)
        missing, stale = sorted(client.scan_iter("tierstream:customer:*"))[:2]
        client.delete(missing)  # the epoch key stays: this Redis did not lose its data
        client.hset(stale, "tier", "private")
        again = run.worker()
        run.wait(lambda: ready(again), 120, "ready after the restart")
        run.wait_caught_up(sent)
        run.wait(
            lambda: client.exists(missing) == 1 and client.hget(stale, "tier") != "private",
            60,
            "both customers served again",
        )
        client.close()
        out = Outcome("unserved")
        check(run, sent, reference_per_partition(events, RULES, 4), out, exact_counts=False)
        assert out.passed, out.problems
    finally:
        run.stop_all()
