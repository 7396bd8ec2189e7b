"""The Faust worker: wire the merge, the engine, the store, commits, Redis and the pages.

The agent only decodes, calls `PartitionEngine`, writes state and sends. What makes
it exact is in the modules it wires:

* `merge`: records of the three input topics of a partition are applied in
  record-timestamp order (the order `simulate` reads the file).
* `commit`: manual acks, committed in intervals: outputs delivered, then state, then
  markers, then acks.
* `store`: a partition marker. After each batch the partition's clock and the
  highest applied offset of each input topic-partition are written to the customers
  table under a reserved key, alone in the last producer batch. On the local broker
  (whose ListOffsets reports the start of the last batch) this keeps table recovery
  exact; after a restart, redelivered records at or below the marker's offsets are
  known to be applied and are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Awaitable
from typing import Any

import faust
import orjson
from faust.types import TP

from ..contract import (
    CUSTOMERS_TABLE,
    DLQ,
    INPUT_TOPICS,
    TIER_CHANGES,
    marker_key,
    marker_value,
    output_topics,
)
from ..engine import codec
from ..engine.evaluate import Output, series_specs
from ..engine.ledger import Customer
from ..engine.partition import APPLIED, DEAD_LETTER, DUPLICATE, PartitionEngine
from ..engine.partitioner import partition_for
from ..engine.rules import Rules
from ..engine.timeutil import US_PER_SECOND, wall_clock_us
from ..preflight import LIFECYCLE_LOGGER, assigned_line
from ..settings import Settings
from . import merge
from .cache import RedisServing
from .commit import Checkpoint, Encode, Write
from .compat import (
    ack_offsets,
    after_fetcher_stops,
    changelog_callback,
    deliver_in_batches,
    record_of,
    routed_to,
    send_batches,
    tune_fetch,
)
from .flow import FetchBrake
from .metrics import WorkerMetrics
from .routing import RoutingCheck
from .store import CustomerStore, Partition, ShapeMismatch, load_marker, share_decoded
from .web import Pages

log = logging.getLogger("tierstream.worker")
#: how long a partition may wait for a never-fetched topic-partition before a warning
UNFETCHED_WARNING_SECONDS = 30.0
lifecycle = logging.getLogger(LIFECYCLE_LOGGER)
#: customers a commit encodes between two turns of the event loop (~60-100 us each)
ENCODE_SLICE = 250
#: changelog records a commit hands to the producer between two turns of the event loop
SEND_SLICE = 500
#: bytes of a changelog batch of state records: aiokafka sends a topic-partition's next
#: batch only once the last is delivered, and at the producer's 16 KB (~22 states) a
#: live flow's commits took seconds (docs/decisions.md 125); under Kafka's 1 MB default
#: message.max.bytes
STATE_BATCH_BYTES = 512 * 1024
#: longest a graceful stop waits for its final commit (a broker that does not answer):
#: past it the stop goes on, and what was applied since the last commit is redelivered
FINAL_COMMIT_SECONDS = 30.0
#: longest a graceful stop waits for its last Redis write
FINAL_SERVING_SECONDS = 5.0
#: a marker's clock, clock day, swept day and applied offsets, as of a commit's start
MarkerFields = tuple[int | None, int | None, int | None, dict[str, int]]


async def to_the_end(work: Awaitable[None]) -> None:
    """Run `work` to its end even when cancelled meanwhile, then pass the cancellation on.

    Faust cancels its fetcher at shutdown, then waits for it (cancelling it again every
    second) before it stops the producer: a batch's outputs are sent whole, and never to
    a closed producer (asyncio.shield alone left the batch running past that stop)."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = cancelled or not task.done()
    if cancelled:
        raise asyncio.CancelledError
    task.result()


class Worker:
    """Owns the partitions assigned to this process and the agent that feeds them."""

    def __init__(self, app: faust.App, settings: Settings, rules: Rules) -> None:
        self.app = app
        self.settings = settings
        self.rules = rules
        self.topics = settings.input_topics
        self.topic_index = {t: i for i, t in enumerate(self.topics)}
        self.input = app.topic(*self.topics, key_serializer="raw", value_serializer="raw")
        self.output_names = {name: settings.topic(name) for name in output_topics(rules)}
        self.table = app.Table(
            CUSTOMERS_TABLE,
            default=None,
            partitions=settings.partitions,
            key_type=bytes,
            value_type=bytes,
        )
        self.partitions: dict[int, Partition] = {}
        self.shape = codec.state_shape(rules.tier_ids, series_specs(rules))
        self.lock = asyncio.Lock()
        self.metrics = WorkerMetrics()
        self.serving = RedisServing(settings, rules, self.metrics)
        self.pages = Pages(self)
        self.buffered = 0
        self.arrived = 0
        self.ready = False
        self.checkpoint = Checkpoint(
            self._snapshot,
            self._send_state,
            self._send_markers,
            self._ack,
            committed=self.metrics.commit_seconds.observe,
        )
        self.metrics.uncommitted.set_function(lambda: self.checkpoint.unacked_records)
        self.metrics.decoded.set_function(lambda: sum(len(p.store.cache) for p in self.partitions.values()))
        #: spills counted into the metric so far, by partition (a store counts its own)
        self.spills_counted: dict[int, int] = {}
        self.brake = FetchBrake(self._pause_fetch, self._resume_fetch, settings.buffered_records)
        self.routing = RoutingCheck(settings.partitions, settings.partitioner)
        self.misrouting_told = False
        #: from a revocation until Faust says that rebalance's tables are recovered
        self.rebalancing = True
        #: partitions already warned about for a long wait on a never-fetched topic
        self.unfetched_told: set[int] = set()
        #: partition -> (topic, since): waits for a first fetch under way
        self.unfetched_waits: dict[int, tuple[str, float]] = {}

    # ------------------------------------------------------------------ wiring
    def install(self) -> None:
        app = self.app
        app.agent(self.input, name="tierstream-ingest")(self._agent)
        # The agent subscribes the input topics; their records reach `_take` one fetch at a
        # time, past Faust's per-message path (the agent is the fallback).
        if not deliver_in_batches(app.consumer, set(self.topics), self._take):  # pragma: no cover
            log.warning("records arrive one by one: Faust's consumer loop has changed (worker/compat.py)")
        if not after_fetcher_stops(app, self._final_commit):  # pragma: no cover
            log.warning("a stop does not commit: Faust's stop has changed (worker/compat.py)")
        app.task(self._merge_loop)
        app.timer(self.settings.sweep_interval_seconds)(self._tick_clock)
        self.pages.install()
        signals: Any = app  # Faust's stubs want plain signals
        signals.on_partitions_revoked.connect(self._on_revoked)
        signals.on_partitions_assigned.connect(self._on_assigned)
        signals.on_rebalance_complete.connect(self._on_rebalance_complete)
        app.task(self.serving.run)

    async def _on_revoked(self, sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        self.rebalancing = True
        self.brake.forget()
        async with self.lock:
            await self._commit_applied()  # what was applied is written before another worker takes it
            for tp in revoked:
                part = self.partitions.pop(tp.partition, None)
                self.spills_counted.pop(tp.partition, None)  # a new store counts from 0
                if part is not None:
                    self.buffered -= sum(len(q) for q in part.queues.values())
                if tp.topic in self.topic_index:
                    # its lag is the new owner's to report: a stale figure here would read
                    # as a stalled worker (TierstreamStalled)
                    with contextlib.suppress(KeyError):
                        self.metrics.lag.remove(tp.topic, str(tp.partition))
            self.ready = False

    async def _commit_applied(self) -> None:
        await self.checkpoint.commit()
        await self.checkpoint.wait()

    async def _final_commit(self) -> None:
        """A graceful stop commits what was applied, as a revocation does: otherwise the
        next owner applies those records again and sends their outputs a second time.
        Then Redis is written once more. Faust's consumer commits the acks after this."""
        async with self.lock:
            try:
                await asyncio.wait_for(self._commit_applied(), FINAL_COMMIT_SECONDS)
            except Exception as exc:  # a stop goes on: the uncommitted is redelivered
                why = (
                    f"not done in {FINAL_COMMIT_SECONDS:g} s"
                    if isinstance(exc, TimeoutError)
                    else f"{type(exc).__name__}: {exc}"
                )
                log.warning(
                    "final commit at stop failed (%s); the records applied since the last "
                    "commit will be applied again by the next owner",
                    why,
                )
                return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.serving.flush(), FINAL_SERVING_SECONDS)

    async def _on_rebalance_complete(self, sender: Any, **kwargs: Any) -> None:
        self.rebalancing = False  # Faust sends it once the tables are recovered

    async def _on_assigned(self, sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        # (not `rebalancing = True` here: Faust sends this after starting the recovery,
        # which may already have completed; the revocation before it set the flag)
        lifecycle.info(assigned_line(self.settings, ((tp.topic, tp.partition) for tp in assigned)))
        settings = self.settings
        if not tune_fetch(
            self.app.consumer, settings.fetch_max_wait_ms, settings.fetch_max_bytes
        ):  # pragma: no cover
            log.warning("cannot set the fetch wait and size: Faust's consumer has changed")
        self.ready = True

    # ------------------------------------------------------------------ partitions
    def partition(self, number: int) -> Partition:
        part = self.partitions.get(number)
        if part is None:
            if not self.pages.recovered():  # callers wait for recovery: a marker read now is stale
                log.warning("partition %d loaded while its table is still being recovered", number)
            engine = PartitionEngine(
                self.rules,
                now=wall_clock_us,
                wall=wall_clock_us,
                eager=False,
            )
            store = CustomerStore(self.table, engine.ledger.specs, partition=number)
            engine.customers = store
            engine.duplicates_move_clock = True  # see PartitionEngine: exact after a crash
            part = Partition(number, engine, store, {t: deque() for t in self.topics})
            with routed_to(number, self.topics[0]):
                try:
                    load_marker(part, self.table, self.shape, self.topic_index)
                except ShapeMismatch as why:
                    self._refuse(
                        f"the customers table of app id {self.settings.app_id!r} was written under "
                        f"rules of another shape than {self.rules.source} (version {self.rules.version}): "
                        f"{why}. Stored tiers and day rings would be misread. Move the state to a new "
                        "TIERSTREAM_APP_ID with `tierstream export` then `tierstream bootstrap` under these "
                        "rules (docs/going-live.md, 'a ladder change'), or run the rules the table was "
                        "written with."
                    )
                serve = self.serving.note_customers
                stored = store.count_stored(
                    number, self.rules.tier_ids, lambda cid, c: serve(engine, [(cid, c)])
                )
                if dict(stored.tiers) != {t: n for t, n in part.tier_counts.items() if n}:
                    part.tier_counts = dict(stored.tiers)
                    self.checkpoint.moved[number] = part  # the next commit writes the marker
                self.serving.note_counts(number, part.tier_counts)
                part.segment_counts = stored.segments
            # What the marker lists was finished (by us before a rebalance, or by the
            # previous owner): lag counts from there, also when nothing new arrives.
            part.acked.update(part.applied)
            self.partitions[number] = part
            share_decoded([p.store for p in self.partitions.values()], self.settings.decoded_customers)
        return part

    def _refuse(self, message: str) -> None:
        """Stop the process: a worker must not run on state it would misread. Faust would
        log an exception raised here and go on without its agent, so exit outright."""
        log.critical(message)
        sys.stderr.write(f"tierstream: error: {message}\n")
        sys.stderr.flush()
        os._exit(2)

    def owned(self, customer_id: str) -> tuple[Partition, Customer] | None:
        """The customer's partition and state, when this worker holds them (tables recovered)."""
        if not self.pages.recovered():
            return None
        number = partition_for(customer_id, self.settings.partitions, self.settings.partitioner)
        part = self.partition(number)
        store = part.store
        store.tracking = False
        try:
            with routed_to(number, self.topics[0]):
                return part, store[customer_id]
        except KeyError:
            return None
        finally:
            store.tracking = True

    # ------------------------------------------------------------------ the agent
    async def _agent(self, stream: faust.StreamT[Any]) -> None:
        manual: Any = stream
        async for event in manual.noack().events():
            self._admit(record_of(event.message))
            # Pump once enough has arrived since the last try: a partition may be
            # waiting for another topic, and retrying on every record would spin.
            if self.arrived >= self.settings.batch_size:
                await self.pump()

    async def _take(self, records: list[merge.Record]) -> None:
        """The input records of one fetch, applied at once (a fetch comes at most once per
        fetch wait, so this does not spin; the merge tick would add up to 50 ms)."""
        for record in records:
            self._admit(record)
        if self.arrived:
            await to_the_end(self.pump())

    def _admit(self, record: merge.Record) -> None:
        if self.rebalancing:
            # Fetched before a revocation (Faust still hands over what it had): admitting
            # it would load its partition again from the table after `_on_revoked` dropped
            # it, and this worker would write state and markers for a partition another
            # worker now owns. Not acked, so its new owner (maybe us) reads it again from
            # the committed offset.
            self.metrics.dropped_in_rebalance.inc()
            return
        topic = record.topic
        part = self.partition(record.partition)
        if not merge.admit(part, topic, record.offset):
            self._ack(part.number, topic, [record.offset])  # applied before a restart: the marker says so
            self.metrics.records.labels(outcome=DUPLICATE).inc()
            return
        queue = part.queues[topic]
        queue.append(record)
        self.brake.admitted(topic, part.number, len(queue))
        self.buffered += 1
        self.arrived += 1

    async def _merge_loop(self) -> None:
        """_tick_merge 50 ms after the previous tick ended. A Faust timer warns "Timer ... is
        overlapping" whenever a tick outlasts its interval, which is normal under load (a
        tick applies a batch): hundreds of warnings that said nothing."""
        app: Any = self.app
        while not app.should_stop:
            await app.sleep(0.05)
            await self._tick_merge()

    async def _tick_merge(self) -> None:
        if self.app.should_stop:
            return  # the producer stops soon after: what is not committed is redelivered
        if self.buffered:
            await self.pump()
            self._warn_unfetched(time.monotonic())
        checkpoint = self.checkpoint
        if checkpoint.pending and not checkpoint.in_flight:
            async with self.lock:
                settings = self.settings
                max_records = settings.commit_max_records
                if checkpoint.due(settings.commit_interval_ms, max_records, self.backlog() >= max_records):
                    await self.checkpoint.commit()
        if self.serving.needs_refresh:
            await self.refresh_serving()

    def _warn_unfetched(self, now: float) -> None:
        """A partition held back by a topic-partition the consumer never fetched: one
        warning past 30 s (paused, or assigned elsewhere, needs an operator), and a line
        when a wait of over a second ends (how long restarts hold partitions back)."""
        for part in self.partitions.values():
            number = part.number
            if part.unfetched and part.waiting_since is not None:
                began = self.unfetched_waits.setdefault(number, (part.unfetched, part.waiting_since))[1]
                waited = now - began
                if waited >= UNFETCHED_WARNING_SECONDS and number not in self.unfetched_told:
                    self.unfetched_told.add(number)
                    lifecycle.warning(
                        "partition %d has waited %.0f s for the first fetch of %s[%d]; its records "
                        "are held so they are applied in timestamp order. Check that this worker "
                        "is assigned that topic-partition and that it is not paused.",
                        number,
                        waited,
                        part.unfetched,
                        number,
                    )
            elif number in self.unfetched_waits:
                topic, began = self.unfetched_waits.pop(number)
                self.unfetched_told.discard(number)
                if now - began >= 1.0:
                    lifecycle.info(
                        "partition %d waited %.1f s for the first fetch of %s[%d]",
                        number,
                        now - began,
                        topic,
                        number,
                    )

    async def refresh_serving(self) -> None:
        """Re-serve every customer of the assigned partitions (Redis lost its data)."""
        if not self.pages.recovered():
            return  # tables first; the flag stays set
        async with self.lock:
            self.serving.needs_refresh = False
            for tp in self.app.consumer.assignment():
                if tp.topic in self.topic_index:
                    self.partition(tp.partition)
            for part in list(self.partitions.values()):
                store = part.store
                cache = store.cache
                decoded: list[tuple[str, Customer]] = []
                encoded: list[tuple[str, bytes]] = []
                with routed_to(part.number, self.topics[0]):
                    for cid in store.customer_ids():
                        c = cache.get(cid)
                        if c is not None:
                            decoded.append((cid, c))
                        elif (state := store.stored(cid)) is not None:
                            # served from its state, decoded a flush slice at a time: the
                            # partition's every customer decoded at once was ~3 KB each
                            encoded.append((cid, state))
                self.serving.note_customers(part.engine, decoded)
                self.serving.note_states(part.engine, encoded)
                self.serving.note_counts(part.number, part.tier_counts)
                await asyncio.sleep(0)

    def _ack(self, number: int, topic: str, offsets: list[int]) -> None:
        ack_offsets(self.app.consumer, topic, number, offsets)

    def _pause_fetch(self, topic: str, number: int) -> None:
        self.app.consumer.on_buffer_full(TP(topic, number))

    def _resume_fetch(self, topic: str, number: int) -> None:
        # never one a rebalance is taking away: Faust would fetch it again unassigned
        # (after a rebalance Faust fetches every assigned topic-partition anyway)
        tp = TP(topic, number)
        if not self.rebalancing and tp in self.app.consumer.assignment():
            self.app.consumer.on_buffer_drop(tp)

    def highwater_of(self, number: int) -> merge.HighWater:
        consumer = self.app.consumer

        def high(topic: str) -> int | None:
            try:
                value: int | None = consumer.highwater(TP(topic, number))
            except Exception:  # not fetched yet
                return None
            return value

        return high

    def backlog(self) -> int:
        """Records known to wait: buffered for the merge, or on the broker past what was
        received (from the high watermarks of the last fetches)."""
        waiting = self.buffered
        for part in self.partitions.values():
            high = self.highwater_of(part.number)
            for topic in self.topics:
                h = high(topic)
                if h is not None:
                    waiting += max(0, h - part.received.get(topic, part.applied.get(topic, -1)) - 1)
        return waiting

    async def pump(self) -> None:
        """Release what is safe, apply it and send its outputs; commit when it is time."""
        async with self.lock:
            self.arrived = 0
            settings = self.settings
            idle = settings.merge_idle_ms / 1000
            checkpoint = self.checkpoint
            while not self.app.should_stop:  # stopping: the rest stays unacked, redelivered
                await checkpoint.make_room(settings.commit_max_records)
                now = time.monotonic()
                work = []
                released = 0
                for part in list(self.partitions.values()):
                    records = merge.release(
                        part, self.topic_index, self.highwater_of(part.number), now, idle, settings.batch_size
                    )
                    if records:
                        work.append((part, records))
                        released += len(records)
                if work:
                    self.brake.released({p.number: p.queues for p in self.partitions.values()})
                    await self._apply(work)
                    self.buffered -= released
                    checkpoint.applied(work)
                    for part, _ in work:
                        # decoded customers stay within the budget between commits too:
                        # changed ones past it are encoded now (the commit would encode
                        # them anyway), not held decoded until it
                        part.store.trim(spill=True)
                    self._count_spills()
                max_records = settings.commit_max_records
                if checkpoint.due(settings.commit_interval_ms, max_records, self.backlog() >= max_records):
                    await checkpoint.commit()
                if released < settings.batch_size:
                    return

    async def _apply(self, work: list[tuple[Partition, list[Any]]]) -> None:
        """Apply a batch and hand its outputs over. Nothing awaits between applying and the
        hand-over's start: a commit encoding meanwhile waits only for the hand-over in
        progress (`Checkpoint.hand_over`) to cover every output of what it read."""
        outputs: list[tuple[Output, float | None]] = []
        bare = self._bare
        for part, records in work:
            engine = part.engine
            process = engine.process_payload
            applied = part.applied
            created = part.store.created
            with routed_to(part.number, self.topics[0]):
                day_before = engine.clock_day
                for record in records:
                    key = record.key.decode("utf-8", "replace") if record.key else None
                    produced = process(
                        bare(record.topic),
                        record.value or b"",
                        partition=record.partition,
                        offset=record.offset,
                        key=key,
                    )
                    if produced:
                        self._count_tiers(part, produced)
                        for o in produced:
                            outputs.append((o, record.timestamp))
                    if created:  # a customer first seen on this partition
                        self._check_routing(record, created)
                        created.clear()
                    applied[record.topic] = record.offset
                if engine.clock_day is not None and engine.clock_day != day_before:
                    await self._send_outputs(outputs)  # in order, before the sweep's
                    outputs.clear()
                    await self._sweep(part)
            self._count(engine)
        await self._send_outputs(outputs)

    def _check_routing(self, record: merge.Record, created: list[str]) -> None:
        for cid in created:
            predicted = self.routing.expected(cid, record.partition)
            if predicted is None:
                continue
            self.metrics.misrouted.labels(topic=record.topic).inc()
            if not self.misrouting_told:  # one warning; the counter tells how many
                self.misrouting_told = True
                lifecycle.warning(self.routing.advice(cid, record.topic, record.partition, predicted))

    async def _sweep(self, part: Partition) -> None:
        """Every customer of the partition up to its clock's day (state not rewritten), its
        outputs sent a slice at a time (a boundary changes most customers: their outputs,
        held whole, were much of the worker's peak memory). Routed to the partition."""
        # marks the customers whose boundaries produced outputs
        for sweep in part.store.sweep_slices(part.engine):
            self._count_tiers(part, sweep)
            await self._send_outputs([(o, None) for o in sweep])
        part.swept_day = part.engine.clock_day
        self._count_spills()

    def _count_spills(self) -> None:
        counted = self.spills_counted
        for number, part in self.partitions.items():
            n = part.store.spills - counted.get(number, 0)
            if n:
                self.metrics.spilled.inc(n)
                counted[number] = part.store.spills

    def _count_tiers(self, part: Partition, outputs: list[Output]) -> None:
        counts = part.tier_counts
        for topic, _, value in outputs:
            if topic == TIER_CHANGES:
                counts[value["from_tier"]] = counts.get(value["from_tier"], 0) - 1
                counts[value["to_tier"]] = counts.get(value["to_tier"], 0) + 1

    def _bare(self, topic: str) -> str:
        return INPUT_TOPICS[self.topic_index[topic]]

    def _count(self, engine: PartitionEngine) -> None:
        """Move the engine's outcome counters into Prometheus."""
        for outcome in (APPLIED, DUPLICATE, DEAD_LETTER):
            n = engine.outcomes[outcome]
            if n:
                self.metrics.records.labels(outcome=outcome).inc(n)
                engine.outcomes[outcome] = 0
        for error, n in list(engine.dead_letters.items()):
            if n:
                self.metrics.dead_letters.labels(error=error).inc(n)
        engine.dead_letters.clear()

    async def _send_outputs(self, outputs: list[tuple[Output, float | None]]) -> None:
        """Hand outputs to the producer now (latency); their delivery is awaited at commit."""
        await self.checkpoint.hand_over(outputs, self._send_output)

    async def _send_output(self, output: tuple[Output, float | None]) -> asyncio.Future[Any]:
        (topic, key, value), ts = output
        kind = value.get("type", "dead_letter") if topic != DLQ else "dead_letter"
        # aiokafka's future for the record's delivery
        future: asyncio.Future[Any] = await self.app.producer.send(  # type: ignore[assignment]
            self.output_names[topic],
            key.encode("utf-8") if key else None,
            orjson.dumps(value),
            None,
            None,
            None,
        )
        future.add_done_callback(functools.partial(self._delivered, kind, ts))
        return future

    def _delivered(self, kind: str, ts: float | None, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            return  # the commit's gather raises it; the records stay unacked
        self.metrics.outputs.labels(type=kind).inc()
        if ts is not None:
            self.metrics.latency.observe(max(0.0, time.time() - ts))

    # ------------------------------------------------------------------ commits
    def _snapshot(self, parts: list[Partition]) -> Encode:
        """Fix what a commit holds now: the customers changed so far in each partition and
        its marker's clock, swept day and offsets (the records the commit acks). Returns
        the encoding, run in the background in slices: each changed customer encoded once
        and put in the store, then the markers; noted for Redis. Its result is the
        changelog writes: state, then markers."""
        held = [
            (
                part,
                part.store.take_touched_ids(),
                (part.engine.clock, part.engine.clock_day, part.swept_day, dict(part.applied)),
            )
            for part in parts
        ]
        return functools.partial(self._encode, held)

    async def _encode(
        self, held: list[tuple[Partition, list[str], MarkerFields]]
    ) -> tuple[list[Write], list[Write]]:
        writes: list[Write] = []
        base = self.rules.tier_ids[0]
        for part, cids, _ in held:
            store = part.store
            cache = store.cache
            for start in range(0, len(cids), ENCODE_SLICE):
                if start:
                    await asyncio.sleep(0)  # let the merge apply what arrived meanwhile
                taken = cids[start : start + ENCODE_SLICE]
                done = store.encode_changed(taken, part.number)
                # served as encoded: decoded ones now, spilled ones (not decoded) when written
                decoded = [(cid, c) for cid, _, _ in done if (c := cache.get(cid)) is not None]
                self.serving.note_customers(part.engine, decoded)
                if len(decoded) < len(done):
                    self.serving.note_states(
                        part.engine, [(cid, b) for cid, b, _ in done if cid not in cache]
                    )
                with routed_to(part.number, self.topics[0]):
                    data = self.table.data
                    for cid, blob, new in done:
                        key = cid.encode("utf-8")
                        data[key] = blob
                        writes.append((part.number, key, blob))
                        if new:
                            part.tier_counts[base] = part.tier_counts.get(base, 0) + 1
                # in the table and noted: the merge's trims may drop them from now on (held
                # decoded to the commit's end, a slow commit kept twice the cache decoded)
                store.encoded(taken)
            self.serving.note_counts(part.number, part.tier_counts)
            store.finish_encoding()
        for tier in self.rules.tier_ids:
            self.metrics.customers.labels(tier=tier).set(
                sum(p.tier_counts.get(tier, 0) for p in self.partitions.values())
            )
        for part, _, _ in held:
            part.take_segment_moves()
        by_value: Counter[tuple[str, str]] = Counter()
        for p in self.partitions.values():
            by_value.update(p.segment_counts)
        for (segment, shown), n in by_value.items():
            self.metrics.segments.labels(segment=segment, value=shown).set(n)
        markers = []
        for part, _, (clock, clock_day, swept_day, applied) in held:
            # as of the commit's start (the records it acks); the tier counts as of now (a
            # hint: a partition's counts are taken from the stored states when it is loaded)
            offsets = {self.topic_index[t]: o for t, o in applied.items()}
            key = marker_key(part.number)
            value = marker_value(self.shape, clock, clock_day, swept_day, part.tier_counts, offsets)
            with routed_to(part.number, self.topics[0]):
                self.table.data[key] = value
            markers.append((part.number, key, value))
        return writes, markers

    async def _send_state(self, writes: list[Write]) -> None:
        """Customer states, delivered.

        Faust's `send_soon` buffer is drained by a background task, so a flush can
        return with writes still to come; we send the changelog records ourselves and
        wait for their delivery."""
        producer = self.app.producer
        table: Any = self.table
        name = table.changelog_topic.get_topic_name()
        batched = await send_batches(producer, name, writes, SEND_SLICE, STATE_BATCH_BYTES)
        futures: list[Awaitable[Any]] = [] if batched is None else list(batched)
        if batched is None:  # pragma: no cover - Faust's producer changed (worker/compat.py)
            for i, (number, key, blob) in enumerate(writes):
                if i and not i % SEND_SLICE:
                    await asyncio.sleep(0)  # a large commit does not hold the merge back
                futures.append(await producer.send(name, key, blob, number, None, None))
        await asyncio.gather(*futures)

    async def _send_markers(self, markers: list[Write]) -> None:
        """Each partition's marker, alone in its batch, its offset recorded as the RocksDB
        checkpoint, so a restart reads the changelog from the last marker on. Recording
        it for every state write would, after a crash between a commit's state and its
        marker, put it past the end offset the local broker reports, and Faust would
        refuse to start."""
        table: Any = self.table
        changelog = table.changelog_topic
        callback = changelog_callback(table)
        sent = [
            await changelog.send(key=key, value=value, partition=number, callback=callback)
            for number, key, value in markers
        ]
        await asyncio.gather(*sent)

    # ------------------------------------------------------------------ live clock
    async def _tick_clock(self) -> None:
        if not self.settings.live_clock:
            return
        async with self.lock:
            instant = wall_clock_us() - self.rules.clock_lag_seconds * US_PER_SECOND
            for part in list(self.partitions.values()):
                engine = part.engine
                if engine.clock is None:
                    continue
                day_before, clock_before = engine.clock_day, engine.clock
                engine.advance_clock(instant)
                if engine.clock_day != day_before or part.swept_day != engine.clock_day:
                    with routed_to(part.number, self.topics[0]):
                        await self._sweep(part)
                    self.checkpoint.moved[part.number] = part
                elif engine.clock != clock_before:
                    self.checkpoint.moved[part.number] = part
            # Committed by the merge tick within the commit interval: waiting here for a
            # commit in flight (its broker round trips) held every partition back, every tick.
