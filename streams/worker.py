"""The Faust worker: merge the three input topics per partition, run the engine, write
tables, send outputs, serve Redis and Prometheus.

The agent only decodes, calls `PartitionEngine`, writes state and sends. What makes it
exact:

* **Merge by record timestamp.** Records of partition p of the three input topics are
  buffered and released in record-timestamp order (the emission order: `replay`
  stamps records so). A topic-partition with nothing buffered holds the others back
  until it is drained to its high watermark or `merge_idle_ms` has passed, as Kafka
  Streams' `max.task.idle.ms` does. So a backlog is applied in the order `simulate`
  reads the file, whatever order the consumer fetched it in.
* **Manual acks, committed in intervals.** Outputs are sent as soon as a batch is
  applied. Every `commit_interval_ms` (or `commit_max_records`) the worker commits:
  it waits for those deliveries, writes each changed customer once, then the
  markers, then acks; Faust commits contiguous acked offsets only. A `kill -9`
  redelivers at most what was not committed, and the engine re-sends the same
  outputs with the same ids (at-least-once; consumers dedupe by `output_id`). As
  in Kafka Streams' record cache, a customer touched many times in an interval is
  written once.
* **A partition marker.** After each batch the partition's clock and the highest
  applied offset of each input topic-partition are written to the customers table
  under a reserved key, alone in the last producer batch. On the local broker
  (whose ListOffsets reports the start of the last batch) this keeps table recovery
  exact; after a restart, redelivered records at or below the marker's offsets are
  known to be applied and are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import logging
import os
import sys
import time
import weakref
from collections import deque
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import faust
import orjson
from faust.exceptions import ConsumerNotStarted
from faust.streams import _current_event
from faust.types import TP

from .engine import codec
from .engine.decode import INPUT_TOPICS
from .engine.evaluate import DLQ, TIER_CHANGES, Output, series_specs
from .engine.ledger import Customer, SeriesSpec
from .engine.partition import APPLIED, DEAD_LETTER, DUPLICATE, PartitionEngine
from .engine.partitioner import partition_for
from .engine.rules import Rules
from .engine.timeutil import US_PER_SECOND, wall_clock_us
from .explain import explain
from .metrics import WorkerMetrics
from .preflight import LIFECYCLE_LOGGER, assigned_line
from .routing import RoutingCheck
from .serving import RedisServing, customer_fields
from .settings import Settings
from .tables import CUSTOMERS_TABLE, MARKER_PREFIX, marker_key, marker_value

log = logging.getLogger("tierstream.worker")
lifecycle = logging.getLogger(LIFECYCLE_LOGGER)

#: a changelog write: (partition, key, value)
Write = tuple[int, bytes, bytes]


class _RoutingEvent:
    """Just enough of a Faust event for table routing (weak-referenceable)."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, message: SimpleNamespace) -> None:
        self.message = message


@contextlib.contextmanager
def routed_to(partition: int, topic: str) -> Iterator[None]:
    """Route Faust table reads and writes to `partition`.

    Faust picks a table's changelog partition (and RocksDB's per-partition database)
    from the event being processed. Our batches span events of several partitions and
    sweeps run from a timer, so we name the partition explicitly.
    """
    stand_in = _RoutingEvent(SimpleNamespace(partition=partition, topic=topic))
    token = _current_event.set(weakref.ref(stand_in))  # type: ignore[arg-type]
    try:
        yield
    finally:
        _current_event.reset(token)


class CustomerStore(MutableMapping[str, Customer]):
    """Decoded customers of one partition over the Faust table (write-back cache)."""

    def __init__(self, table: Any, specs: tuple[SeriesSpec, ...]) -> None:
        self.table = table
        self.specs = specs
        self.cache: dict[str, Customer] = {}
        self.loaded: dict[str, bytes | None] = {}  # bytes as read, to skip unchanged writes
        self.touched: set[str] = set()
        self.ids: set[str] = set()
        #: off during sweeps: boundary catch-up is a pure function of the stored state
        #: and the day, so an older stored state catches up to the same result later.
        self.tracking = True

    def __getitem__(self, cid: str) -> Customer:
        c = self.cache.get(cid)
        if c is None:
            raw = self.table.get(cid.encode("utf-8"))
            if raw is None:
                raise KeyError(cid)
            c = codec.decode(raw, self.specs)
            self.cache[cid] = c
            self.loaded[cid] = raw
            self.ids.add(cid)
        if self.tracking:
            self.touched.add(cid)
        return c

    def __setitem__(self, cid: str, c: Customer) -> None:
        self.cache[cid] = c
        self.loaded.setdefault(cid, None)
        self.touched.add(cid)
        self.ids.add(cid)

    def __delitem__(self, cid: str) -> None:  # pragma: no cover - customers are never deleted
        raise NotImplementedError("customers are not deleted")

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.ids))

    def __len__(self) -> int:
        return len(self.ids)

    def take_touched(self, partition: int) -> list[tuple[str, bytes, bool]]:
        """Encode every customer whose state changed: (id, state, first write)."""
        changed = []
        for cid in self.touched:
            blob = codec.encode(self.cache[cid], self.specs, partition)
            before = self.loaded.get(cid)
            if blob != before:
                self.loaded[cid] = blob
                changed.append((cid, blob, before is None))
        self.touched.clear()
        if len(self.cache) > 200_000:  # bound the decoded cache; the table has everything
            for cid in list(self.cache)[:100_000]:
                del self.cache[cid]
                del self.loaded[cid]
        return changed


@dataclass
class Partition:
    """Everything the worker holds for one assigned partition number."""

    number: int
    engine: PartitionEngine
    store: CustomerStore
    queues: dict[str, deque[Any]] = field(default_factory=dict)
    waiting_since: float | None = None
    #: highest applied offset per input topic (from the marker after a restart)
    applied: dict[str, int] = field(default_factory=dict)
    #: highest offset received per input topic (for drain checks)
    received: dict[str, int] = field(default_factory=dict)
    #: highest offset fully done (outputs delivered, state written) per input topic: lag
    acked: dict[str, int] = field(default_factory=dict)
    swept_day: int | None = None
    #: customers per tier (kept in the marker, so exact across restarts)
    tier_counts: dict[str, int] = field(default_factory=dict)


class Worker:
    """Owns the partitions assigned to this process and the agent that feeds them."""

    def __init__(self, app: faust.App, settings: Settings, rules: Rules) -> None:
        self.app = app
        self.settings = settings
        self.rules = rules
        self.topics = settings.input_topics
        self.topic_index = {t: i for i, t in enumerate(self.topics)}
        self.input = app.topic(*self.topics, key_serializer="raw", value_serializer="raw")
        self.output_names = {
            name: settings.topic(name)
            for name in ("tier.changes", "tier.opportunities", "customer.churn-warnings", DLQ)
        }
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
        self.buffered = 0
        self.arrived = 0
        self.ready = False
        #: applied but not yet committed: records to ack, partitions to persist, deliveries
        self.uncommitted: list[tuple[Partition, list[Any]]] = []
        self.uncommitted_records = 0
        self.moved: dict[int, Partition] = {}
        self.deliveries: list[asyncio.Future[Any]] = []
        self.last_commit = time.monotonic()
        self.committing: asyncio.Future[None] | None = None
        self.routing = RoutingCheck(settings.partitions, settings.partitioner)
        self.misrouting_told = False

    # ------------------------------------------------------------------ wiring
    def install(self) -> None:
        app = self.app
        app.agent(self.input, name="tierstream-ingest")(self._agent)
        app.task(self._merge_loop)
        app.timer(self.settings.sweep_interval_seconds)(self._tick_clock)
        signals: Any = app  # Faust's stubs want unbound view functions and plain signals
        signals.page("/metrics")(self._metrics_page)
        signals.page("/health")(self._health_page)
        signals.page("/ready")(self._ready_page)
        route = signals.table_route(table=self.table, match_info="customer_id")
        signals.page("/customers/{customer_id}")(self._guarded(route(self._customer_view)))
        signals.page("/customers/{customer_id}/explain")(self._guarded(route(self._explain_view)))
        signals.on_partitions_revoked.connect(self._on_revoked)
        signals.on_partitions_assigned.connect(self._on_assigned)
        app.task(self.serving.run)

    async def _on_revoked(self, sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        async with self.lock:
            await self._commit()  # what was applied is written before another worker takes it
            await self._commit_done()
            for tp in revoked:
                part = self.partitions.pop(tp.partition, None)
                if part is not None:
                    self.buffered -= sum(len(q) for q in part.queues.values())
            self.ready = False

    async def _on_assigned(self, sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        lifecycle.info(assigned_line(self.settings, ((tp.topic, tp.partition) for tp in assigned)))
        self._tune_fetch()
        self.ready = True

    def _tune_fetch(self) -> None:
        """Faust creates its aiokafka consumer with fetch_max_wait_ms=1500 and no way to
        change it. Tansu answers a fetch only when that wait is over, even when records
        arrive meanwhile (measured: p50 delivery 374 ms at 1500, 28 ms at 100), which
        would put over a second into event-to-output latency. The fetcher reads the
        value for every request, so setting it here takes effect at the next fetch."""
        consumer: Any = self.app.consumer
        inner = getattr(getattr(consumer, "_thread", None), "_consumer", None)
        fetcher = getattr(inner, "_fetcher", None)
        if fetcher is not None and hasattr(fetcher, "_fetch_max_wait_ms"):
            fetcher._fetch_max_wait_ms = self.settings.fetch_max_wait_ms
        else:  # pragma: no cover - a Faust or aiokafka upgrade moved it
            log.warning("cannot set fetch_max_wait_ms: Faust's consumer has changed")

    # ------------------------------------------------------------------ partitions
    def partition(self, number: int) -> Partition:
        part = self.partitions.get(number)
        if part is None:
            engine = PartitionEngine(
                self.rules,
                now=wall_clock_us,
                wall=wall_clock_us,
                eager=False,
            )
            store = CustomerStore(self.table, engine.ledger.specs)
            engine.customers = store
            engine.duplicates_move_clock = True  # see PartitionEngine: exact after a crash
            part = Partition(number, engine, store, {t: deque() for t in self.topics})
            with routed_to(number, self.topics[0]):
                self._load_marker(part)
                self._load_ids(part)
            # What the marker lists was finished (by us before a rebalance, or by the
            # previous owner): lag counts from there, also when nothing new arrives.
            part.acked.update(part.applied)
            self.partitions[number] = part
        return part

    def _load_marker(self, part: Partition) -> None:
        raw = self.table.get(marker_key(part.number))
        if raw is None:
            return
        doc = orjson.loads(raw)
        stored = doc.get("shape")  # markers before this field carry none
        if stored is not None:
            why = codec.shape_mismatch(stored, self.shape)
            if why is not None:
                self._refuse(
                    f"the customers table of app id {self.settings.app_id!r} was written under "
                    f"rules of another shape than {self.rules.source} (version {self.rules.version}): "
                    f"{why}. Stored tiers and day rings would be misread. Move the state to a new "
                    "TIERSTREAM_APP_ID with `tierstream export` then `tierstream bootstrap` under these "
                    "rules (docs/going-live.md, 'a ladder change'), or run the rules the table was "
                    "written with."
                )
        part.engine.clock = doc["clock"]
        part.engine.clock_day = doc["clock_day"]
        part.swept_day = doc.get("swept_day")
        part.tier_counts = dict(doc.get("counts", {}))
        part.applied = {
            t: doc["offsets"][str(i)] for t, i in self.topic_index.items() if str(i) in doc["offsets"]
        }

    def _load_ids(self, part: Partition) -> None:
        """Customer ids of this partition: the table keys whose state says so. Each state is
        also counted by tier and served to Redis again, because a crash (of this worker or
        of the previous owner) may have come after a commit's state writes but before its
        marker (whose tier counts then miss those customers, and their records come back as
        duplicates, which count nothing) or before its Redis write (the records are not
        redelivered, so nothing would serve those customers again)."""
        counts: dict[str, int] = {}
        tier_ids = self.rules.tier_ids
        for key, raw in self.table.items():
            if key.startswith(MARKER_PREFIX) or raw is None:
                continue
            if codec.partition_of(raw) == part.number:
                cid = key.decode("utf-8")
                part.store.ids.add(cid)
                c = codec.decode(raw, part.store.specs)
                counts[tier_ids[c.tier]] = counts.get(tier_ids[c.tier], 0) + 1
                self.serving.note_customers(part.engine, [(cid, c)])
        if counts != {t: n for t, n in part.tier_counts.items() if n}:
            part.tier_counts = counts
            self.moved[part.number] = part  # the next commit writes the marker
        self.serving.note_counts(part.number, part.tier_counts)

    def _refuse(self, message: str) -> None:
        """Stop the process: a worker must not run on state it would misread. Faust would
        log an exception raised here and go on without its agent, so exit outright."""
        log.critical(message)
        sys.stderr.write(f"tierstream: error: {message}\n")
        sys.stderr.flush()
        os._exit(2)

    def _marker(self, part: Partition) -> bytes:
        engine = part.engine
        offsets = {self.topic_index[t]: o for t, o in part.applied.items()}
        return marker_value(
            self.shape, engine.clock, engine.clock_day, part.swept_day, part.tier_counts, offsets
        )

    # ------------------------------------------------------------------ the agent
    async def _agent(self, stream: faust.StreamT[Any]) -> None:
        manual: Any = stream
        async for event in manual.noack().events():
            msg = event.message
            part = self.partition(msg.partition)
            part.received[msg.topic] = max(part.received.get(msg.topic, -1), msg.offset)
            if msg.offset <= part.applied.get(msg.topic, -1):
                event.ack()  # applied before a restart: the marker says so
                self.metrics.records.labels(outcome=DUPLICATE).inc()
                continue
            part.queues[msg.topic].append(event)
            self.buffered += 1
            self.arrived += 1
            # Pump once enough has arrived since the last try: a partition may be
            # waiting for another topic, and retrying on every record would spin.
            if self.arrived >= self.settings.batch_size:
                await self.pump()

    async def _merge_loop(self) -> None:
        """_tick_merge 50 ms after the previous tick ended. A Faust timer warns "Timer ... is
        overlapping" whenever a tick outlasts its interval, which is normal under load (a
        tick applies a batch): hundreds of warnings that said nothing."""
        app: Any = self.app
        while not app.should_stop:
            await app.sleep(0.05)
            await self._tick_merge()

    async def _tick_merge(self) -> None:
        if self.buffered:
            await self.pump()
        if self.uncommitted_records or self.moved:
            async with self.lock:
                if time.monotonic() - self.last_commit >= self.settings.commit_interval_ms / 1000:
                    await self._commit()
        if self.serving.needs_refresh:
            await self.refresh_serving()

    async def refresh_serving(self) -> None:
        """Re-serve every customer of the assigned partitions (Redis lost its data)."""
        tables: Any = self.app.tables
        if not tables.recovery.completed.is_set():
            return  # tables first; the flag stays set
        async with self.lock:
            self.serving.needs_refresh = False
            for tp in self.app.consumer.assignment():
                if tp.topic in self.topic_index:
                    self.partition(tp.partition)
            for part in list(self.partitions.values()):
                store = part.store
                store.tracking = False
                try:
                    with routed_to(part.number, self.topics[0]):
                        customers = [(cid, store[cid]) for cid in list(store.ids)]
                finally:
                    store.tracking = True
                self.serving.note_customers(part.engine, customers)
                self.serving.note_counts(part.number, part.tier_counts)
                await asyncio.sleep(0)

    def _drained(self, part: Partition, topic: str) -> bool | None:
        """True: nothing left to fetch right now; False: records are known to be
        pending (position below the high watermark); None: not fetched yet."""
        tp = TP(topic, part.number)
        try:
            high = self.app.consumer.highwater(tp)
        except Exception:  # not fetched yet
            return None
        if high is None:
            return None
        position = part.received.get(topic, part.applied.get(topic, -1)) + 1
        return bool(position >= high)

    def _release(self, part: Partition, now: float, limit: int) -> list[Any]:
        """Records of one partition in merge order, as far as it is safe to go."""
        out: list[Any] = []
        queues = part.queues
        idle = self.settings.merge_idle_ms / 1000
        while len(out) < limit:
            heads = [(q[0].message.timestamp, self.topic_index[t], t) for t, q in queues.items() if q]
            if not heads:
                part.waiting_since = None
                break
            states = [self._drained(part, t) for t, q in queues.items() if not q]
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

    async def pump(self) -> None:
        """Release what is safe, apply it and send its outputs; commit when it is time."""
        async with self.lock:
            self.arrived = 0
            settings = self.settings
            while True:
                now = time.monotonic()
                work = []
                released = 0
                for part in list(self.partitions.values()):
                    records = self._release(part, now, settings.batch_size)
                    if records:
                        work.append((part, records))
                        released += len(records)
                if work:
                    await self._apply(work)
                    self.buffered -= released
                    self.uncommitted.extend(work)
                    self.uncommitted_records += released
                if (
                    self.uncommitted_records >= settings.commit_max_records
                    or time.monotonic() - self.last_commit >= settings.commit_interval_ms / 1000
                ):
                    await self._commit()
                if released < settings.batch_size:
                    return

    async def _apply(self, work: list[tuple[Partition, list[Any]]]) -> None:
        outputs: list[tuple[Output, float | None]] = []
        bare = self._bare
        for part, records in work:
            engine = part.engine
            process = engine.process_payload
            applied = part.applied
            with routed_to(part.number, self.topics[0]):
                day_before = engine.clock_day
                for event in records:
                    msg = event.message
                    if msg.key:
                        self._check_routing(msg)
                    key = msg.key.decode("utf-8", "replace") if msg.key else None
                    produced = process(
                        bare(msg.topic),
                        msg.value or b"",
                        partition=msg.partition,
                        offset=msg.offset,
                        key=key,
                    )
                    if produced:
                        self._count_tiers(part, produced)
                        for o in produced:
                            outputs.append((o, msg.timestamp))
                    applied[msg.topic] = msg.offset
                if engine.clock_day is not None and engine.clock_day != day_before:
                    outputs.extend((o, None) for o in self._sweep(part))
            self._count(engine)
        await self._send_outputs(outputs)

    def _check_routing(self, msg: Any) -> None:
        predicted = self.routing.expected(msg.key, msg.partition)
        if predicted is None:
            return
        self.metrics.misrouted.labels(topic=msg.topic).inc()
        if not self.misrouting_told:  # one warning; the counter tells how many
            self.misrouting_told = True
            lifecycle.warning(self.routing.advice(msg.key, msg.topic, msg.partition, predicted))

    async def _commit(self) -> None:
        """Snapshot what was applied (changed state encoded, markers) now, and write it in
        the background: outputs delivered, then state, then markers, then acks. One
        commit is in flight at a time, so the merge goes on applying records while the
        broker answers (a blocking commit put its round trips into the latency p99)."""
        await self._commit_done()
        self.last_commit = time.monotonic()
        parts = dict(self.moved)
        for part, _ in self.uncommitted:
            parts[part.number] = part
        if not parts and not self.deliveries:
            return
        deliveries, self.deliveries = self.deliveries, []
        records, self.uncommitted = self.uncommitted, []
        self.uncommitted_records = 0
        self.moved = {}
        writes, markers = self._snapshot(list(parts.values()))
        self.committing = asyncio.ensure_future(self._write(deliveries, writes, markers, records))

    async def _commit_done(self) -> None:
        """Wait for the commit in flight; its failure (a delivery) is raised here."""
        if self.committing is not None:
            task, self.committing = self.committing, None
            await task

    def _sweep(self, part: Partition) -> list[Output]:
        """Every customer of the partition up to its clock's day (state not rewritten)."""
        sweep: list[Output] = []
        part.store.tracking = False
        try:
            part.engine.sweep(sweep)
        finally:
            part.store.tracking = True
        # Customers whose boundaries produced outputs are written, so that stored state,
        # sent outputs and the marker's tier counts agree after a restart.
        part.store.touched.update(key for topic, key, _ in sweep if topic != DLQ)
        self._count_tiers(part, sweep)
        part.swept_day = part.engine.clock_day
        return sweep

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
        producer = self.app.producer
        names = self.output_names
        for (topic, key, value), ts in outputs:
            kind = value.get("type", "dead_letter") if topic != DLQ else "dead_letter"
            # aiokafka's future for the record's delivery
            future: asyncio.Future[Any] = await producer.send(  # type: ignore[assignment]
                names[topic], key.encode("utf-8") if key else None, orjson.dumps(value), None, None, None
            )
            future.add_done_callback(functools.partial(self._delivered, kind, ts))
            self.deliveries.append(future)

    def _delivered(self, kind: str, ts: float | None, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            return  # the commit's gather raises it; the records stay unacked
        self.metrics.outputs.labels(type=kind).inc()
        if ts is not None:
            self.metrics.latency.observe(max(0.0, time.time() - ts))

    def _snapshot(self, parts: list[Partition]) -> tuple[list[Write], list[Write]]:
        """Encode each changed customer once and put it and the markers in the store;
        note them for Redis. Returns the changelog writes: state, then markers."""
        writes: list[Write] = []
        base = self.rules.tier_ids[0]
        for part in parts:
            changed = part.store.take_touched(part.number)
            with routed_to(part.number, self.topics[0]):
                data = self.table.data
                for cid, blob, new in changed:
                    key = cid.encode("utf-8")
                    data[key] = blob
                    writes.append((part.number, key, blob))
                    if new:
                        part.tier_counts[base] = part.tier_counts.get(base, 0) + 1
            self.serving.note_customers(part.engine, [(cid, part.store.cache[cid]) for cid, _, _ in changed])
            self.serving.note_counts(part.number, part.tier_counts)
        for tier in self.rules.tier_ids:
            self.metrics.customers.labels(tier=tier).set(
                sum(p.tier_counts.get(tier, 0) for p in self.partitions.values())
            )
        markers = []
        for part in parts:
            key, value = marker_key(part.number), self._marker(part)
            with routed_to(part.number, self.topics[0]):
                self.table.data[key] = value
            markers.append((part.number, key, value))
        return writes, markers

    async def _write(
        self,
        deliveries: list[asyncio.Future[Any]],
        writes: list[Write],
        markers: list[Write],
        records: list[tuple[Partition, list[Any]]],
    ) -> None:
        """State first, delivered; then each partition's marker, alone in its batch; then acks.

        Faust's `send_soon` buffer is drained by a background task, so a flush can
        return with writes still to come; we send the changelog records ourselves and
        wait for their delivery. A marker's offset is recorded as the RocksDB checkpoint,
        so a restart reads the changelog from the last marker on. Recording it for every
        state write would, after a crash between a commit's state and its marker, put it
        past the end offset the local broker reports, and Faust would refuse to start.
        """
        if deliveries:
            await asyncio.gather(*deliveries)
        producer = self.app.producer
        table: Any = self.table
        changelog = table.changelog_topic
        name = changelog.get_topic_name()
        futures = [await producer.send(name, key, blob, number, None, None) for number, key, blob in writes]
        await asyncio.gather(*futures)
        sent = [
            await changelog.send(key=key, value=value, partition=number, callback=table._on_changelog_sent)
            for number, key, value in markers
        ]
        await asyncio.gather(*sent)
        for part, events in records:
            acked = part.acked
            for event in events:
                event.ack()
                acked[event.message.topic] = event.message.offset

    # ------------------------------------------------------------------ live clock
    async def _tick_clock(self) -> None:
        if not self.settings.live_clock:
            return
        async with self.lock:
            instant = wall_clock_us() - self.rules.clock_lag_seconds * US_PER_SECOND
            outputs: list[tuple[Output, float | None]] = []
            for part in list(self.partitions.values()):
                engine = part.engine
                if engine.clock is None:
                    continue
                day_before = engine.clock_day
                engine.advance_clock(instant)
                if engine.clock_day != day_before or part.swept_day != engine.clock_day:
                    with routed_to(part.number, self.topics[0]):
                        outputs.extend((o, None) for o in self._sweep(part))
                self.moved[part.number] = part
            await self._send_outputs(outputs)
            await self._commit()

    # ------------------------------------------------------------------ web
    # Faust makes a handler the `get` of a View class; ours are bound methods, so they
    # receive only the request and answer through the app's web driver.
    async def _metrics_page(self, request: Any) -> Any:
        self._update_lag()
        body, content_type = self.metrics.render()
        return self.app.web.bytes(body, content_type=content_type.split(";")[0])

    async def _health_page(self, request: Any) -> Any:
        return self.app.web.json({"status": "ok"})

    def _assignment(self) -> set[TP]:
        """The partitions assigned, or none while the consumer is still starting (a scrape
        or a readiness probe may come first; Faust raises then)."""
        try:
            assigned: set[TP] = self.app.consumer.assignment()
        except ConsumerNotStarted:
            return set()
        return assigned

    async def _ready_page(self, request: Any) -> Any:
        web = self.app.web
        assigned = self._assignment()
        tables: Any = self.app.tables
        recovered = bool(tables.recovery.completed.is_set())
        ok = bool(self.ready and assigned and recovered)
        return web.json(
            {"ready": ok, "assigned": len(assigned), "recovered": recovered}, status=200 if ok else 503
        )

    # ------------------------------------------------------------------ customers API
    def _guarded(self, handler: Any) -> Any:
        """Bearer-token check (constant time) on every hop, before routing to the owner.
        The customer id is logged; a customer's figures never are."""
        token = self.settings.api_token.get_secret_value().encode("utf-8")

        async def view(view: Any, request: Any, **kwargs: Any) -> Any:
            given = request.headers.get("Authorization", "")
            if not token:
                return view.json({"error": "set TIERSTREAM_API_TOKEN to enable /customers"}, status=403)
            if not given.startswith("Bearer ") or not hmac.compare_digest(given[7:].encode("utf-8"), token):
                return view.json({"error": "a valid bearer token is required"}, status=401)
            log.info("customer request for %s", kwargs.get("customer_id"))
            return await handler(view, request, **kwargs)

        return view

    def _owned(self, customer_id: str) -> tuple[Partition, Customer] | None:
        tables: Any = self.app.tables
        if not tables.recovery.completed.is_set():
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

    async def _customer_view(self, view: Any, request: Any, customer_id: str) -> Any:
        """GET /customers/{id}: tier, lifecycle and metrics, from this worker's table."""
        found = self._owned(customer_id)
        if found is None:
            return view.json({"error": f"no customer {customer_id}"}, status=404)
        part, c = found
        ev = part.engine.evaluator
        fields = customer_fields(part.engine, c, self.rules)
        return view.json(
            {
                "customer_id": customer_id,
                "tier": fields["tier"],
                "since": fields["since"],
                "lifecycle": fields["lifecycle"],
                "quadrant": fields["quadrant"],
                "rules_version": self.rules.version,
                "as_of": part.engine.calendar.isoformat(c.last_instant),
                "metrics": ev.render_metrics(c, ev.churn_metrics),
            }
        )

    async def _explain_view(self, view: Any, request: Any, customer_id: str) -> Any:
        """GET /customers/{id}/explain: the `tierstream explain` document (outputs are in
        the output topics, not the tables, so the list is empty here)."""
        found = self._owned(customer_id)
        if found is None:
            return view.json({"error": f"no customer {customer_id}"}, status=404)
        part, _ = found
        return view.json(explain(part.engine, customer_id, []))

    def _update_lag(self) -> None:
        consumer = self.app.consumer
        tables: Any = self.app.tables
        recovered = bool(tables.recovery.completed.is_set())
        for tp in self._assignment():
            if tp.topic not in self.topic_index:
                continue
            try:
                high = consumer.highwater(tp)
            except Exception:
                continue
            if high is None:
                continue
            part = self.partitions.get(tp.partition)
            if part is None and recovered:
                part = self.partition(tp.partition)  # its marker knows what was applied
            done = -1
            if part is not None:
                done = part.acked.get(tp.topic, -1)
            self.metrics.lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                max(0, high - (done + 1))
            )
