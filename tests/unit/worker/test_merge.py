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
    applied: dict[str, int] = field(default_factory=dict)
    received: dict[str, int] = field(default_factory=dict)


def record(topic: str, offset: int, timestamp: float) -> Any:
    return SimpleNamespace(message=SimpleNamespace(topic=topic, offset=offset, timestamp=timestamp))


def receive(buf: Buffer, *records: Any) -> None:
    for r in records:
        if merge.admit(buf, r.message.topic, r.message.offset):
            buf.queues[r.message.topic].append(r)


def highwaters(**highs: int | None) -> merge.HighWater:
    by_topic = {BAL: highs.get("bal"), TXN: highs.get("txn"), PRO: highs.get("pro")}
    return lambda topic: by_topic[topic]


def names(records: list[Any]) -> list[tuple[str, int]]:
    return [(r.message.topic, r.message.offset) for r in records]


def test_records_are_released_in_timestamp_order_across_topics() -> None:
    buf = Buffer()
    receive(buf, record(BAL, 0, 3.0), record(BAL, 1, 5.0), record(TXN, 0, 1.0), record(PRO, 0, 4.0))
    released = merge.release(buf, ORDER, highwaters(bal=2, txn=1, pro=1), now=0.0, idle=IDLE, limit=10)
    # the balances record at 5.0 waits once transactions and profiles are empty but drained
    assert names(released) == [(TXN, 0), (BAL, 0), (PRO, 0), (BAL, 1)]


def test_equal_timestamps_follow_the_topic_order() -> None:
    buf = Buffer()
    receive(buf, record(PRO, 0, 1.0), record(TXN, 0, 1.0), record(BAL, 0, 1.0))
    released = merge.release(buf, ORDER, highwaters(bal=1, txn=1, pro=1), now=0.0, idle=IDLE, limit=10)
    assert names(released) == [(BAL, 0), (TXN, 0), (PRO, 0)]


def test_a_pending_high_watermark_holds_the_others_back() -> None:
    buf = Buffer()
    receive(buf, record(BAL, 0, 1.0))
    # transactions has records up to offset 4 not yet fetched: never go ahead of them
    released = merge.release(buf, ORDER, highwaters(bal=1, txn=5, pro=0), now=100.0, idle=IDLE, limit=10)
    assert released == []
    assert buf.waiting_since is None, "a known backlog is not an idle wait"


def test_an_idle_topic_is_waited_for_a_bounded_time() -> None:
    buf = Buffer()
    receive(buf, record(BAL, 0, 1.0))
    nothing_known = highwaters(bal=1, txn=None, pro=0)
    assert merge.release(buf, ORDER, nothing_known, now=10.0, idle=IDLE, limit=10) == []
    assert buf.waiting_since == 10.0
    assert merge.release(buf, ORDER, nothing_known, now=10.4, idle=IDLE, limit=10) == []
    assert names(merge.release(buf, ORDER, nothing_known, now=10.5, idle=IDLE, limit=10)) == [(BAL, 0)]
    assert buf.waiting_since is None


def test_a_drained_topic_does_not_wait() -> None:
    buf = Buffer()
    receive(buf, record(TXN, 6, 1.0))
    buf.received[BAL] = 9  # everything up to the high watermark arrived and was released
    released = merge.release(buf, ORDER, highwaters(bal=10, txn=7, pro=0), now=0.0, idle=IDLE, limit=10)
    assert names(released) == [(TXN, 6)]


def test_release_stops_at_the_limit_and_goes_on_next_time() -> None:
    buf = Buffer()
    receive(buf, *(record(BAL, i, float(i)) for i in range(5)))
    highs = highwaters(bal=5, txn=0, pro=0)
    assert names(merge.release(buf, ORDER, highs, 0.0, IDLE, limit=3)) == [(BAL, 0), (BAL, 1), (BAL, 2)]
    assert names(merge.release(buf, ORDER, highs, 0.0, IDLE, limit=3)) == [(BAL, 3), (BAL, 4)]


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
