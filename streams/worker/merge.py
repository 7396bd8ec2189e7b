"""The timestamp merge of the three input topics of one partition (pure: no Faust).

Records of partition p of the three input topics are buffered and released in
record-timestamp order (the emission order: `replay` stamps records so). A
topic-partition with nothing buffered holds the others back until it is drained to
its high watermark or `merge_idle_ms` has passed, as Kafka Streams'
`max.task.idle.ms` does. So a backlog is applied in the order `simulate` reads the
file, whatever order the consumer fetched it in.

A record is anything with `.message.topic`, `.message.offset` and
`.message.timestamp` (a Faust event in the worker, a stub in the tests).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

#: the high watermark of one of the partition's input topics; None: not fetched yet
HighWater = Callable[[str], int | None]


class MergeState(Protocol):
    """What the merge reads and updates of a partition (`store.Partition`)."""

    queues: dict[str, deque[Any]]
    waiting_since: float | None
    applied: dict[str, int]
    received: dict[str, int]


def admit(part: MergeState, topic: str, offset: int) -> bool:
    """Note a record as received; False when the partition marker says it was applied
    before a restart (ack and skip it), True when it is to be buffered."""
    part.received[topic] = max(part.received.get(topic, -1), offset)
    return offset > part.applied.get(topic, -1)


def drained(part: MergeState, topic: str, high: int | None) -> bool | None:
    """True: nothing left to fetch right now; False: records are known to be
    pending (position below the high watermark); None: not fetched yet."""
    if high is None:
        return None
    position = part.received.get(topic, part.applied.get(topic, -1)) + 1
    return bool(position >= high)


def release(
    part: MergeState, order: dict[str, int], highwater: HighWater, now: float, idle: float, limit: int
) -> list[Any]:
    """Records of one partition in merge order, as far as it is safe to go.

    `order` ranks the topics (balances, transactions, profiles) for records of equal
    timestamps; `idle` is how long (seconds) to wait for a topic-partition nothing is
    known of before going on without it."""
    out: list[Any] = []
    queues = part.queues
    while len(out) < limit:
        heads = [(q[0].message.timestamp, order[t], t) for t, q in queues.items() if q]
        if not heads:
            part.waiting_since = None
            break
        states = [drained(part, t, highwater(t)) for t, q in queues.items() if not q]
        if False in states:
            break  # records of an empty queue are known to be coming: never go ahead of them
        if None in states:
            # Nothing known yet about a topic-partition (not fetched): wait a bounded time,
            # as Kafka Streams' max.task.idle.ms, then go on.
            if part.waiting_since is None:
                part.waiting_since = now
            if now - part.waiting_since < idle:
                break
        part.waiting_since = None
        _, _, topic = min(heads)
        out.append(queues[topic].popleft())
    return out
