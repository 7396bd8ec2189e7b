"""The timestamp merge of the three input topics of one partition (pure: no Faust).

Records of partition p of the three input topics are buffered and released in
record-timestamp order (the emission order: `replay` stamps records so). A
topic-partition with nothing buffered holds the others back until it is known to be
drained to its high watermark: one never fetched yet is always waited for, since its
records may already be on the broker (Kafka Streams' `max.task.idle.ms` >= 0 "does
wait to fetch data that is already present on the brokers"). A drained one holds the
others back for `merge_idle_ms` more (0 by default: records not yet produced are not
waited for). So a backlog is applied in the order `simulate` reads the file,
whatever order the consumer fetched it in, also right after a restart.

A record is a `Record` (anything with `.topic`, `.offset` and `.timestamp` in the tests).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol


class Record(NamedTuple):
    """An input record as the worker holds it from its fetch until it is applied: the
    fields it reads, not Faust's message (a message, its weak reference in Faust's set of
    unacked ones and the sensors' fields were ~0.5 KB a record, and three objects the
    collector walks; this is one, still tracked: the collector untracks only exact
    tuples). Acked by offset once committed (`compat.ack_offsets`)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float


#: the high watermark of one of the partition's input topics; None: not fetched yet
HighWater = Callable[[str], int | None]


class MergeState(Protocol):
    """What the merge reads and updates of a partition (`store.Partition`)."""

    queues: dict[str, deque[Any]]
    waiting_since: float | None
    #: the first topic waited for because it was never fetched (None: not waiting so)
    unfetched: str | None
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
    timestamps; `idle` is how long (seconds) a drained, empty topic-partition holds the
    others back for records not yet produced (Kafka Streams' `max.task.idle.ms`)."""
    out: list[Any] = []
    queues = part.queues
    while len(out) < limit:
        heads = [(q[0].timestamp, order[t], t) for t, q in queues.items() if q]
        if not heads:
            part.waiting_since = None
            part.unfetched = None
            break
        states = {t: drained(part, t, highwater(t)) for t, q in queues.items() if not q}
        if False in states.values():
            part.unfetched = part.waiting_since = None
            break  # records of an empty queue are known to be coming: never go ahead of them
        if None in states.values():
            # Records of a topic-partition never fetched may already be on the broker:
            # wait for its first fetch, however long (the worker warns past a while).
            if part.unfetched is None:
                part.unfetched = next(t for t, s in states.items() if s is None)
                part.waiting_since = now
            break
        part.unfetched = None
        if states and idle > 0:
            if part.waiting_since is None:
                part.waiting_since = now
            if now - part.waiting_since < idle:
                break
            # waited long enough: go on with what is here until every topic has records again
        else:
            part.waiting_since = None
        _, _, topic = min(heads)
        out.append(queues[topic].popleft())
    return out


def describe(part: MergeState, highwater: HighWater) -> dict[str, Any]:
    """What the merge holds for one partition and what it waits for (`/ready`'s `merge`):
    a stalled partition says why, a topic never fetched or records known to be pending."""
    return {
        "buffered": {t: len(q) for t, q in part.queues.items()},
        "received": dict(part.received),
        "applied": dict(part.applied),
        "high": {t: highwater(t) for t in part.queues},
        "waiting_for_first_fetch": part.unfetched,
    }
