"""Commits: outputs delivered, then state, then partition markers, then acks (no Faust).

Outputs are sent as soon as a batch is applied. Every `commit_interval_ms` (or
`commit_max_records`) the worker commits: it waits for those deliveries, writes each
changed customer once, then the markers, then acks; Faust commits contiguous acked
offsets only. A `kill -9` redelivers at most what was not committed, and the engine
re-sends the same outputs with the same ids (at-least-once; consumers dedupe by
`output_id`). As in Kafka Streams' record cache, a customer touched many times in an
interval is written once.

One commit is in flight at a time, so the merge goes on applying records while the
broker answers (a blocking commit put its round trips into the latency p99). What a
commit holds is fixed when it starts (the records it acks, the customers changed so
far, each partition's marker as of then); the changed customers are then encoded in
the background, in slices, while the merge goes on (encoding a second's customers at
once held the event loop for hundreds of ms). A customer encoded after more of its
records were applied is written ahead of the marker, the state a crash between a
commit's state writes and its marker leaves too (docs/worker.md); the outputs of
those records are sent before its state, since the deliveries are taken once the
encoding is done, and once the hand-over in progress then (`hand_over`: a send may
wait for room in the producer's batch, and the encoding go on meanwhile) has ended. A
failed delivery is raised by the next `commit()` or `wait()` and nothing of that commit
is acked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from .store import Partition

#: output deliveries kept before the delivered ones are first dropped from the list
PRUNE_DELIVERIES = 10_000
#: a changelog write: (partition, key, value)
Write = tuple[int, bytes, bytes]
#: the encoding of what a commit holds, run in the background: (state writes, marker writes)
Encode = Callable[[], Awaitable[tuple[list[Write], list[Write]]]]
#: fix what changed in these partitions now (cheap); its encoding comes later
Snapshot = Callable[[list[Partition]], Encode]
#: send changelog writes and wait for their delivery
Send = Callable[[list[Write]], Awaitable[None]]
#: mark a partition's applied offsets of one topic safe to commit: (partition, topic, offsets)
Ack = Callable[[int, str, list[int]], None]
#: the offsets of a partition's applied records, by topic, in the order applied
Offsets = dict[str, list[int]]
Item = TypeVar("Item")


class Checkpoint:
    """What was applied but not yet committed, and the commit in flight."""

    def __init__(
        self,
        snapshot: Snapshot,
        send_state: Send,
        send_markers: Send,
        ack: Ack,
        clock: Callable[[], float] = time.monotonic,
        committed: Callable[[float], None] | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.send_state = send_state
        self.send_markers = send_markers
        self.ack = ack
        self.clock = clock
        #: told each commit's duration (start to acks), in the clock's seconds
        self.committed = committed
        #: offsets of applied records to ack, by partition (only offsets are kept past
        #: applying: a record's value was most of what a commit held)
        self.uncommitted: list[tuple[Partition, Offsets]] = []
        self.uncommitted_records = 0
        #: records the commit in flight acks once written
        self.writing_records = 0
        #: partitions whose clock moved without records (the live clock)
        self.moved: dict[int, Partition] = {}
        #: output deliveries not yet awaited
        self.deliveries: list[asyncio.Future[Any]] = []
        self.prune_at = PRUNE_DELIVERIES
        self.last_commit = clock()
        self.committing: asyncio.Future[None] | None = None
        #: the hand-over in progress, resolved when it ends
        self.handing: asyncio.Future[None] | None = None
        self.handovers = 0

    def applied(self, work: list[tuple[Partition, list[Any]]]) -> None:
        """Records applied (their outputs sent; anything with `.topic` and `.offset`): to
        be committed."""
        uncommitted = self.uncommitted
        for part, records in work:
            offsets: Offsets = {}
            for record in records:
                by_topic = offsets.get(record.topic)
                if by_topic is None:
                    by_topic = offsets[record.topic] = []
                by_topic.append(record.offset)
            uncommitted.append((part, offsets))
            self.uncommitted_records += len(records)

    def delivering(self, future: asyncio.Future[Any]) -> None:
        """An output handed to the producer: the next commit awaits its delivery. Those
        delivered are dropped from time to time (a day boundary sends outputs for most
        customers at once, and a commit awaits only what is not delivered yet); a failed
        one is kept, for that commit to raise."""
        deliveries = self.deliveries
        deliveries.append(future)
        if len(deliveries) >= self.prune_at:
            kept = [f for f in deliveries if not f.done() or f.cancelled() or f.exception() is not None]
            self.deliveries = kept
            self.prune_at = max(PRUNE_DELIVERIES, 2 * len(kept))

    async def hand_over(
        self, items: Iterable[Item], send: Callable[[Item], Awaitable[asyncio.Future[Any]]]
    ) -> None:
        """Hand outputs to the producer (`send` returns a delivery); the next commit to take
        the deliveries awaits them (`delivering` looks the list up at every item: a commit
        may take it while a send waits)."""
        with self._handing():
            for item in items:
                self.delivering(await send(item))

    @contextmanager
    def _handing(self) -> Iterator[None]:
        """While outputs are handed over, a commit whose encoding ends waits for the end
        before taking the deliveries: the merge applied every record whose effects the
        encoding read, but their outputs may still be in the list being handed over."""
        if not self.handovers:
            self.handing = asyncio.get_running_loop().create_future()
        self.handovers += 1
        try:
            yield
        finally:
            self.handovers -= 1
            if not self.handovers and self.handing is not None:
                self.handing.set_result(None)
                self.handing = None

    @property
    def unacked_records(self) -> int:
        """Applied and not acked yet: not in a commit, or in the one in flight."""
        return self.uncommitted_records + self.writing_records

    @property
    def pending(self) -> bool:
        return bool(self.uncommitted_records or self.moved)

    def interval_over(self, interval_ms: int) -> bool:
        return self.clock() - self.last_commit >= interval_ms / 1000

    @property
    def in_flight(self) -> bool:
        """A commit is still encoding or writing (the next one would wait for it)."""
        return self.committing is not None and not self.committing.done()

    def due(self, interval_ms: int, max_records: int, behind: bool = False) -> bool:
        """Time for a commit, and none in flight: the merge applies on meanwhile rather
        than waiting (the one in flight may still be encoding). `behind` (a backlog of at
        least `max_records` waits): commit by records only, since a commit writes each
        customer changed since the last one, and a backlog touches the same ones again
        and again (a live flow is committed every interval, for Redis and the lag)."""
        if self.in_flight:
            return False
        if self.uncommitted_records >= max_records:
            return True
        return not behind and self.interval_over(interval_ms)

    async def make_room(self, max_records: int) -> None:
        """Before applying more: when a whole commit's records (`max_records`) were applied
        since the one in flight began, wait for it, so the next starts at once. Behind a
        backlog the merge applied on while a slow commit wrote, and held every record
        applied meanwhile (to ack) and every customer they changed (touched, so never
        dropped); a live flow commits every interval, far below `max_records`."""
        if self.in_flight and self.uncommitted_records >= max_records:
            await self.wait()

    async def commit(self) -> None:
        """Fix what was applied (changed customers, markers) now, and write it in the
        background: changed customers encoded, outputs delivered, then state, then
        markers, then acks."""
        await self.wait()
        self.last_commit = self.clock()
        parts = dict(self.moved)
        for part, _ in self.uncommitted:
            parts[part.number] = part
        if not parts and not self.deliveries:
            return
        records, self.uncommitted = self.uncommitted, []
        self.writing_records = self.uncommitted_records
        self.uncommitted_records = 0
        self.moved = {}
        encode = self.snapshot(list(parts.values()))
        self.committing = asyncio.ensure_future(self._write(encode, records, self.last_commit))

    async def wait(self) -> None:
        """Wait for the commit in flight; its failure (a delivery) is raised here."""
        if self.committing is not None:
            task, self.committing = self.committing, None
            await task

    async def _write(self, encode: Encode, records: list[tuple[Partition, Offsets]], began: float) -> None:
        writes, markers = await encode()
        if self.handing is not None:  # the encoding may have read past what is handed over yet
            await asyncio.shield(self.handing)
        # every output sent so far: the state just encoded may hold records applied
        # after the commit began, and their outputs must be delivered before it
        deliveries, self.deliveries = self.deliveries, []
        if deliveries:
            await asyncio.gather(*deliveries)
        await self.send_state(writes)
        await self.send_markers(markers)
        ack = self.ack
        for part, offsets in records:
            acked = part.acked
            for topic, applied in offsets.items():
                ack(part.number, topic, applied)
                acked[topic] = applied[-1]
        self.writing_records = 0
        if self.committed is not None:
            self.committed(self.clock() - began)
