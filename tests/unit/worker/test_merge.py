"""The timestamp merge of the three input topics, with stub records (no Faust, no broker)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from tierstream.worker import merge

BAL, TXN, PRO = "t.balances", "t.transactions", "t.profiles"
ORDER = {BAL: 0, TXN: 1, PRO: 2}
IDLE = 0.5


@dataclass
class Buffer:
    queues: dict[str, deque[Any]] = field(default_factory=lambda: {t: deque() for t in ORDER})
    waiting_since: float | None = None
    unfetched: str | None = None
    applied: dict[str, int] = field(default_factory=dict)
    received: dict[str, int] = field(default_factory=dict)


def record(topic: str, offset: int, timestamp: float) -> Any:
    return SimpleNamespace(topic=topic, offset=offset, timestamp=timestamp)


def receive(buf: Buffer, *records: Any) -> None:
    for r in records:
        if merge.admit(buf, r.topic, r.offset):
            buf.queues[r.topic].append(r)


def highwaters(**highs: int | None) -> merge.HighWater:
    by_topic = {BAL: highs.get("bal"), TXN: highs.get("txn"), PRO: highs.get("pro")}
    return lambda topic: by_topic[topic]


def names(records: list[Any]) -> list[tuple[str, int]]:
    return [(r.topic, r.offset) for r in records]


def test_records_are_released_in_timestamp_order_across_topics() -> None:
    buf = Buffer()
    receive(buf, record(BAL, 0, 3.0), record(BAL, 1, 5.0), record(TXN, 0, 1.0), record(PRO, 0, 4.0))
    released = merge.release(buf, ORDER, highwaters(bal=2, txn=1, pro=1), now=0.0, idle=0, limit=10)
    # transactions and profiles are empty but drained (merge_idle_ms 0): nothing holds back
    assert names(released) == [(TXN, 0), (BAL, 0), (PRO, 0), (BAL, 1)]


def test_equal_timestamps_follow_the_topic_order() -> None:
    buf = Buffer()
    receive(buf, record(PRO, 0, 1.0), record(TXN, 0, 1.0), record(BAL, 0, 1.0))
    released = merge.release(buf, ORDER, highwaters(bal=1, txn=1, pro=1), now=0.0, idle=0, limit=10)
    assert names(released) == [(BAL, 0), (TXN, 0), (PRO, 0)]


def test_a_pending_high_watermark_holds_the_others_back() -> None:
    buf = Buffer()
    receive(buf, record(BAL, 0, 1.0))
    # transactions has records up to offset 4 not yet fetched: never go ahead of them
    released = merge.release(buf, ORDER, highwaters(bal=1, txn=5, pro=0), now=100.0, idle=0, limit=10)
    assert released == []
    assert buf.waiting_since is None, "a known backlog is not an idle wait"


def test_a_never_fetched_topic_is_waited_for_however_long() -> None:
    """Found by chaos scenario 1: after a kill -9, a topic-partition not fetched within
    the old 2 s timeout let the others run ahead of records already on the broker."""
    buf = Buffer()
    receive(buf, record(BAL, 0, 1.0))
    nothing_known = highwaters(bal=1, txn=None, pro=0)
    for now in (10.0, 10.5, 1000.0):
        assert merge.release(buf, ORDER, nothing_known, now=now, idle=0, limit=10) == []
    assert buf.unfetched == TXN and buf.waiting_since == 10.0, "the wait is timed from its start"
    # the first fetch shows transactions records below this balance's timestamp: they go first
    receive(buf, record(TXN, 0, 0.5))
    released = merge.release(buf, ORDER, highwaters(bal=1, txn=1, pro=0), now=1000.1, idle=0, limit=10)
    assert names(released) == [(TXN, 0), (BAL, 0)]
    assert buf.unfetched is None and buf.waiting_since is None


def test_a_never_fetched_topic_that_turns_out_empty_lets_the_others_go() -> None:
    buf = Buffer()
    receive(buf, record(BAL, 0, 1.0))
    assert merge.release(buf, ORDER, highwaters(bal=1, txn=None, pro=0), now=0.0, idle=0, limit=10) == []
    released = merge.release(buf, ORDER, highwaters(bal=1, txn=0, pro=0), now=0.1, idle=0, limit=10)
    assert names(released) == [(BAL, 0)]


def test_a_drained_topic_holds_the_others_back_for_the_idle_time_only() -> None:
    """merge_idle_ms > 0: Kafka Streams' max.task.idle.ms for records not yet produced."""
    buf = Buffer()
    receive(buf, record(BAL, 0, 1.0), record(BAL, 1, 2.0))
    drained_all = highwaters(bal=2, txn=0, pro=0)
    assert merge.release(buf, ORDER, drained_all, now=10.0, idle=IDLE, limit=10) == []
    assert merge.release(buf, ORDER, drained_all, now=10.4, idle=IDLE, limit=10) == []
    released = merge.release(buf, ORDER, drained_all, now=10.5, idle=IDLE, limit=10)
    assert names(released) == [(BAL, 0), (BAL, 1)], "once waited, everything buffered goes"


def test_a_drained_topic_does_not_wait() -> None:
    buf = Buffer()
    receive(buf, record(TXN, 6, 1.0))
    buf.received[BAL] = 9  # everything up to the high watermark arrived and was released
    released = merge.release(buf, ORDER, highwaters(bal=10, txn=7, pro=0), now=0.0, idle=0, limit=10)
    assert names(released) == [(TXN, 6)]


def test_release_stops_at_the_limit_and_goes_on_next_time() -> None:
    buf = Buffer()
    receive(buf, *(record(BAL, i, float(i)) for i in range(5)))
    highs = highwaters(bal=5, txn=0, pro=0)
    assert names(merge.release(buf, ORDER, highs, 0.0, 0, limit=3)) == [(BAL, 0), (BAL, 1), (BAL, 2)]
    assert names(merge.release(buf, ORDER, highs, 0.0, 0, limit=3)) == [(BAL, 3), (BAL, 4)]


def test_after_a_restart_records_at_or_below_the_marker_are_skipped() -> None:
    buf = Buffer(applied={BAL: 4, TXN: 1})
    assert not merge.admit(buf, BAL, 3)
    assert not merge.admit(buf, BAL, 4)
    assert merge.admit(buf, BAL, 5)
    assert merge.admit(buf, PRO, 0), "a topic the marker does not list starts at the beginning"
    assert buf.received == {BAL: 5, PRO: 0}


@pytest.mark.parametrize(
    ("received", "applied", "high", "expected"),
    [
        ({}, {}, None, None),  # not fetched yet
        ({}, {}, 0, True),  # an empty topic-partition
        ({}, {}, 3, False),  # records known to be coming
        ({}, {BAL: 2}, 3, True),  # the marker says everything below the high watermark was applied
        ({BAL: 1}, {BAL: 2}, 3, False),  # received wins over the marker once records arrive
        ({BAL: 2}, {}, 3, True),
    ],
)
def test_drained(
    received: dict[str, int], applied: dict[str, int], high: int | None, expected: bool | None
) -> None:
    buf = Buffer(received=dict(received), applied=dict(applied))
    assert merge.drained(buf, BAL, high) is expected


def test_describe_says_what_a_held_partition_waits_for() -> None:
    buf = Buffer(applied={BAL: 4})
    receive(buf, record(BAL, 5, 1.0), record(BAL, 6, 2.0))
    never_fetched = highwaters(bal=7, txn=None, pro=0)
    assert merge.release(buf, ORDER, never_fetched, now=3.0, idle=0, limit=10) == []
    assert merge.describe(buf, never_fetched) == {
        "buffered": {BAL: 2, TXN: 0, PRO: 0},
        "received": {BAL: 6},
        "applied": {BAL: 4},
        "high": {BAL: 7, TXN: None, PRO: 0},
        "waiting_for_first_fetch": TXN,
    }
