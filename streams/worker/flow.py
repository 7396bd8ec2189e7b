"""How much of a backlog the worker holds: fetching pauses per input topic-partition.

No Faust import: pausing and resuming are callables (the wiring passes the consumer's
`on_buffer_full` / `on_buffer_drop`, Faust's own hooks for a full stream buffer).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sized

#: pause or resume fetching one topic-partition: (topic, partition)
Switch = Callable[[str, int], None]


class FetchBrake:
    """Stops fetching an input topic-partition while the merge holds `limit` of its
    records, and fetches it again once half of them are applied.

    Behind a backlog the consumer fetched far faster than the merge applied: records of
    a topic whose records span more time per fetch waited in the merge's queues for the
    others (the merge applies in timestamp order), and held most of a replayed backlog
    in memory (docs/decisions.md). The brake never stalls the merge: the merge waits
    only for an empty queue, and a paused topic-partition's queue is never empty (it is
    fetched again at half of `limit`)."""

    def __init__(self, pause: Switch, resume: Switch, limit: int) -> None:
        self.pause = pause
        self.resume = resume
        self.limit = limit
        self.paused: set[tuple[str, int]] = set()

    def admitted(self, topic: str, partition: int, queued: int) -> None:
        """A record joined its queue, which now holds `queued`."""
        if queued >= self.limit and (topic, partition) not in self.paused:
            self.paused.add((topic, partition))
            self.pause(topic, partition)

    def released(self, queues: Mapping[int, Mapping[str, Sized]]) -> None:
        """Records left the queues (partition -> topic -> queue): resume those at half."""
        if not self.paused:
            return
        low = self.limit // 2
        for topic, partition in list(self.paused):
            by_topic = queues.get(partition)
            queue = None if by_topic is None else by_topic.get(topic)
            if queue is None or len(queue) <= low:
                self.paused.discard((topic, partition))
                if queue is not None:
                    self.resume(topic, partition)

    def forget(self) -> None:
        """A rebalance: Faust resets which partitions it fetches itself (every assigned
        one), so nothing is resumed here."""
        self.paused.clear()
