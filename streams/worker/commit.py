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
commit writes is snapshotted when it starts; a failed delivery is raised by the next
`commit()` or `wait()` and nothing of that commit is acked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .store import Partition

#: a changelog write: (partition, key, value)
Write = tuple[int, bytes, bytes]
#: encode what changed in these partitions: (state writes, marker writes)
Snapshot = Callable[[list[Partition]], tuple[list[Write], list[Write]]]
#: send changelog writes and wait for their delivery
Send = Callable[[list[Write]], Awaitable[None]]


class Checkpoint:
    """What was applied but not yet committed, and the commit in flight."""

    def __init__(
        self,
        snapshot: Snapshot,
        send_state: Send,
        send_markers: Send,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.snapshot = snapshot
        self.send_state = send_state
        self.send_markers = send_markers
        self.clock = clock
        #: applied records to ack, by partition
        self.uncommitted: list[tuple[Partition, list[Any]]] = []
        self.uncommitted_records = 0
        #: partitions whose clock moved without records (the live clock)
        self.moved: dict[int, Partition] = {}
        #: output deliveries not yet awaited
        self.deliveries: list[asyncio.Future[Any]] = []
        self.last_commit = clock()
        self.committing: asyncio.Future[None] | None = None

    def applied(self, work: list[tuple[Partition, list[Any]]]) -> None:
        """Records applied (their outputs sent): to be committed."""
        self.uncommitted.extend(work)
        self.uncommitted_records += sum(len(records) for _, records in work)

    @property
    def pending(self) -> bool:
        return bool(self.uncommitted_records or self.moved)

    def interval_over(self, interval_ms: int) -> bool:
        return self.clock() - self.last_commit >= interval_ms / 1000

    def due(self, interval_ms: int, max_records: int) -> bool:
        return self.uncommitted_records >= max_records or self.interval_over(interval_ms)

    async def commit(self) -> None:
        """Snapshot what was applied (changed state encoded, markers) now, and write it in
        the background: outputs delivered, then state, then markers, then acks."""
        await self.wait()
        self.last_commit = self.clock()
        parts = dict(self.moved)
        for part, _ in self.uncommitted:
            parts[part.number] = part
        if not parts and not self.deliveries:
            return
        deliveries, self.deliveries = self.deliveries, []
        records, self.uncommitted = self.uncommitted, []
        self.uncommitted_records = 0
        self.moved = {}
        writes, markers = self.snapshot(list(parts.values()))
        self.committing = asyncio.ensure_future(self._write(deliveries, writes, markers, records))

    async def wait(self) -> None:
        """Wait for the commit in flight; its failure (a delivery) is raised here."""
        if self.committing is not None:
            task, self.committing = self.committing, None
            await task

    async def _write(
        self,
        deliveries: list[asyncio.Future[Any]],
        writes: list[Write],
        markers: list[Write],
        records: list[tuple[Partition, list[Any]]],
    ) -> None:
        if deliveries:
            await asyncio.gather(*deliveries)
        await self.send_state(writes)
        await self.send_markers(markers)
        for part, events in records:
            acked = part.acked
            for event in events:
                event.ack()
                acked[event.message.topic] = event.message.offset
