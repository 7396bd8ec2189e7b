"""The bounded forms of `make chaos` (bench/chaos.py): scenarios on a small bank, on the
session's broker. Each one checks every record accounted for, the outputs id for id
against `simulate` per partition, the tables after recovery and Redis against them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import RULES, SCENARIOS, Lab, Outcome, Run, Size, bank, check, ready
from tests.integration.support import publish, reference_per_partition
from tierstream.localstack import Proc

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

        import redis

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
