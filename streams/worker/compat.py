"""Every reach into Faust's or aiokafka's private attributes, in one place.

Faust (faust-streaming 0.15.3) and aiokafka (0.14.0) are pinned in pyproject.toml.
The worker needs these things neither offers publicly; each is wrapped here, and
`missing()` names any of them a version no longer has (tests/unit/worker/test_compat.py
fails loudly on an upgrade that moved one):

* `faust.streams._current_event`: the context variable Faust reads to route table
  reads and writes to a partition (`routed_to`).
* the aiokafka fetcher's `_fetch_max_wait_ms`, behind Faust's consumer thread
  (`consumer._thread._consumer._fetcher`), which Faust fixes at 1500 ms, and its
  `_fetch_max_bytes` and `_max_partition_fetch_bytes`, which Faust leaves at 50 MB and
  1 MB (`tune_fetch`).
* `Table._on_changelog_sent`, the callback that records a changelog offset as the
  RocksDB checkpoint (`changelog_callback`).
* `Consumer._drain_messages`, the loop Faust's Fetcher runs over `getmany`
  (`deliver_in_batches`): it awaits `wait_first` (four asyncio tasks) per message;
  ours hands the records of the worker's input topics to the worker one fetch at a
  time and leaves every other topic (changelogs) on Faust's own path. Its source is
  pinned by digest (`DRAIN_DIGEST`), so an upgrade that changes it fails a test.
* `Producer._ensure_producer`, the aiokafka producer behind Faust's, whose public
  batch API (`create_batch`, `send_batch`) sends a commit's changelog records at a
  fraction of a per-record `send`'s cost (`send_batches`).
* `Consumer._committed_offset`, `_acked_index`, `_acked`, `_n_acked`, `_waiting_for_ack`
  and `faust.types.tuples.ack_lock`: what `Consumer.ack` updates for one message,
  updated by offset (`ack_offsets`), since the worker keeps a record's fields and not
  its Faust message (`merge.Record`).
* `App._stop_fetcher`, the step of Faust's graceful stop (`App._stop_consumer`, pinned
  by digest as `STOP_CONSUMER_DIGEST`) after which no record is delivered and before
  which the tables and the producer still run (`after_fetcher_stops`): the worker's
  final commit goes there.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import types
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from types import SimpleNamespace
from typing import Any

from faust.streams import _current_event
from faust.types.tuples import TP, ack_lock
from mode.utils.futures import notify

from .merge import Record

#: (owner, attribute) of every private name used here, for `missing()`
CURRENT_EVENT = ("faust.streams", "_current_event")
ON_CHANGELOG_SENT = ("faust.tables.base.Collection", "_on_changelog_sent")
FETCH_MAX_WAIT = ("aiokafka.consumer.fetcher.Fetcher", "_fetch_max_wait_ms")
FETCH_MAX_BYTES = ("aiokafka.consumer.fetcher.Fetcher", "_fetch_max_bytes")
PARTITION_FETCH_BYTES = ("aiokafka.consumer.fetcher.Fetcher", "_max_partition_fetch_bytes")
CONSUMER_THREAD = ("faust.transport.drivers.aiokafka.Consumer", "_thread")
THREAD_CONSUMER = ("faust.transport.drivers.aiokafka.AIOKafkaConsumerThread", "_consumer")
CONSUMER_FETCHER = ("aiokafka.consumer.consumer.AIOKafkaConsumer", "_fetcher")
DRAIN_MESSAGES = ("faust.transport.consumer.Consumer", "_drain_messages")
READ_OFFSET = ("faust.transport.consumer.Consumer", "_read_offset")
ADD_GAP = ("faust.transport.consumer.Consumer", "_add_gap")
N_ACKED = ("faust.transport.consumer.Consumer", "_n_acked")
COMMIT_EVERY = ("faust.transport.consumer.Consumer", "_commit_every")
COMMITTED_OFFSET = ("faust.transport.consumer.Consumer", "_committed_offset")
ACKED_INDEX = ("faust.transport.consumer.Consumer", "_acked_index")
ACKED = ("faust.transport.consumer.Consumer", "_acked")
WAITING_FOR_ACK = ("faust.transport.consumer.Consumer", "_waiting_for_ack")
ACK_LOCK = ("faust.types.tuples", "ack_lock")
ENSURE_PRODUCER = ("faust.transport.drivers.aiokafka.Producer", "_ensure_producer")
STOP_FETCHER = ("faust.app.base.App", "_stop_fetcher")
PRODUCER_ACCUMULATOR = ("aiokafka.producer.producer.AIOKafkaProducer", "_message_accumulator")
ACCUMULATOR_COMPRESSION = ("aiokafka.producer.message_accumulator.MessageAccumulator", "_compression_type")

#: sha256 of the source of faust-streaming 0.15.3's `Consumer.ack`, whose bookkeeping
#: `ack_offsets` repeats by offset: a change means re-reading it and ours
ACK_DIGEST = "5fcf41cf45153475de3790dc56fec1b83335956dc8b3bf7ff6bbb2b57627f03f"
#: sha256 of the source of faust-streaming 0.15.3's `Consumer._drain_messages`, which
#: `deliver_in_batches` replaces: a change means re-reading it and ours
DRAIN_DIGEST = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"
#: sha256 of the source of faust-streaming 0.15.3's `App._stop_consumer`: the fetcher is
#: stopped, then the tables; the producer is flushed and stopped after it returns
STOP_CONSUMER_DIGEST = "55854a5de12c3f5296b4acf16ddfe359be0b702d0cd7686bcab541847c396077"


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


def tune_fetch(consumer: Any, fetch_max_wait_ms: int, fetch_max_bytes: int | None = None) -> bool:
    """Set the fetch wait (and the bytes a fetch response may hold) of Faust's aiokafka
    consumer; False when it cannot be found.

    Faust creates its aiokafka consumer with fetch_max_wait_ms=1500 and no way to
    change it. Tansu answers a fetch only when that wait is over, even when records
    arrive meanwhile (measured: p50 delivery 374 ms at 1500, 28 ms at 100), which
    would put over a second into event-to-output latency. The fetcher reads the
    value for every request, so setting it takes effect at the next fetch.

    Faust passes no `fetch_max_bytes` either (aiokafka's default: 50 MB a response). A
    response's bytes stay alive until every record of its partitions is taken, and the
    fetch brake holds records back, so the local broker's responses (up to ~2.6 MB per
    topic-partition: it does not keep to `max_partition_fetch_bytes`, measured) were
    ~31 MB of a 60,000-customer worker's peak; each partition's limit is lowered to the
    response's too, since Kafka returns a partition's first batch whole anyway."""
    inner = getattr(getattr(consumer, "_thread", None), "_consumer", None)
    fetcher = getattr(inner, "_fetcher", None)
    if fetcher is None or not hasattr(fetcher, "_fetch_max_wait_ms"):
        return False
    fetcher._fetch_max_wait_ms = fetch_max_wait_ms
    if fetch_max_bytes is not None and hasattr(fetcher, "_fetch_max_bytes"):
        fetcher._fetch_max_bytes = fetch_max_bytes
        fetcher._max_partition_fetch_bytes = min(fetcher._max_partition_fetch_bytes, fetch_max_bytes)
    return True


def changelog_callback(table: Any) -> Callable[..., Any]:
    """The table's own changelog-sent callback: it records the offset as the checkpoint."""
    callback: Callable[..., Any] = table._on_changelog_sent
    return callback


def kafka_producer(producer: Any) -> Any | None:
    """The aiokafka producer behind Faust's (started on first use, as Faust's `send`
    does); None when Faust no longer has it where this expects."""
    ensure = getattr(producer, "_ensure_producer", None)
    return None if ensure is None else ensure()


#: records for one topic: (partition, key, value)
Records = Sequence[tuple[int, bytes | None, bytes]]


#: an attribute not found where `batch_maker` reads it
_UNREAD = object()


def batch_maker(kafka: Any, batch_bytes: int | None) -> Callable[[], Any]:
    """Empty batches of `batch_bytes` in the producer's compression (its own size when
    None, or when the compression cannot be read where this expects it). aiokafka
    queues one batch per topic-partition and sends the next only once that one is
    delivered, so a commit's state records go out a batch per broker round trip."""
    from aiokafka.producer.message_accumulator import BatchBuilder

    accumulator = getattr(kafka, "_message_accumulator", None)
    compression = getattr(accumulator, "_compression_type", _UNREAD)
    if batch_bytes is None or compression is _UNREAD:
        return kafka.create_batch  # type: ignore[no-any-return]
    return lambda: BatchBuilder(batch_bytes, compression)


async def send_batches(
    producer: Any, topic: str, records: Records, yield_every: int = 500, batch_bytes: int | None = None
) -> list[asyncio.Future[Any]] | None:
    """Hand `records` to the aiokafka producer behind Faust's in one batch per partition
    (more when one fills up), in order per partition; the futures resolve on delivery.
    A per-record `send` costs tens of microseconds (Faust's sensors, aiokafka's
    metadata wait, a future per record); a commit writes one record per changed
    customer. None (nothing sent) when the aiokafka producer cannot be reached."""
    kafka = kafka_producer(producer)
    if kafka is None:
        return None
    by_partition: dict[int, list[tuple[bytes | None, bytes]]] = {}
    for partition, key, value in records:
        by_partition.setdefault(partition, []).append((key, value))
    futures: list[asyncio.Future[Any]] = []
    appended = 0
    new_batch = batch_maker(kafka, batch_bytes)
    for partition, items in by_partition.items():
        batch = new_batch()
        for key, value in items:
            if batch.append(key=key, value=value, timestamp=None) is None:  # full
                futures.append(await kafka.send_batch(batch, topic, partition=partition))
                batch = new_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"a record of {len(value):,} bytes does not fit in a batch of {topic}")
            appended += 1
            if not appended % yield_every:
                await asyncio.sleep(0)  # a large commit does not hold the merge back
        if batch.record_count():
            futures.append(await kafka.send_batch(batch, topic, partition=partition))
    return futures


def record_of(message: Any) -> Record:
    """What the worker keeps of a Faust message until it is applied (`merge.Record`)."""
    return Record(
        message.topic, message.partition, message.offset, message.key, message.value, message.timestamp
    )


def ack_offsets(consumer: Any, topic: str, partition: int, offsets: Sequence[int]) -> None:
    """Faust's `Consumer.ack` for records whose messages are not kept: each offset is
    marked safe to commit, under Faust's `ack_lock`, as `ack` marks one message's (one
    acked below the committed offset, or twice, is not counted again)."""
    tp = TP(topic, partition)
    if not consumer.app.topics.acks_enabled_for(topic):
        return
    with ack_lock:
        committed = consumer._committed_offset[tp]
        acked_index = consumer._acked_index[tp]
        acked = consumer._acked[tp]
        n = 0
        for offset in offsets:
            if (committed is None or offset >= committed) and offset not in acked_index:
                acked_index.add(offset)
                acked.append(offset)
                n += 1
        consumer._n_acked += n
        notify(consumer._waiting_for_ack)


#: receives the records of one fetch (input topics only), in fetch order
BatchSink = Callable[[list[Record]], Awaitable[None]]


def drain_digest() -> str:
    from faust.transport.consumer import Consumer

    return hashlib.sha256(inspect.getsource(Consumer._drain_messages).encode()).hexdigest()


def deliver_in_batches(consumer: Any, topics: set[str], sink: BatchSink) -> bool:
    """Replace the consumer's per-message delivery for `topics` with one `sink` call per
    fetch; False (nothing changed) when Faust's loop is not the one this was written for.

    Kept from Faust's loop: the read offset (records below it are dropped, gaps are
    noted for acking), `commit_every`, and dropping a fetch when the flow stopped or the
    generation changed mid-fetch (a rebalance seeks back to the committed offsets). Not
    kept for these topics: the message itself (the sink gets `merge.Record`s, acked by
    offset: `ack_offsets`), so neither Faust's set of unacked messages (read only by a
    stream's `wait_empty`, off in the worker's app) nor its message-in and per-event
    sensors see them (the worker's own metrics count records), and the four tasks
    `wait_first` runs per message."""
    if drain_digest() != DRAIN_DIGEST or not hasattr(consumer, "_read_offset"):
        return False
    consumer._drain_messages = types.MethodType(_batch_drain(topics, sink), consumer)
    return True


def _batch_drain(topics: set[str], sink: BatchSink) -> Callable[[Any, Any], Awaitable[None]]:
    async def drain(self: Any, fetcher: Any) -> None:  # pragma: no cover - run by the worker
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        app = self.app
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                generation = app.consumer_generation_id
                batch: list[Record] = []
                await self.sleep(0)
                if self.should_stop:
                    continue
                async for tp, message in self.getmany(timeout=1.0):
                    offset = message.offset
                    r_offset = read_offset[tp]
                    if r_offset is not None and offset < r_offset:
                        continue  # already read (Faust drops it too)
                    if r_offset and offset - r_offset > 1 and acks_enabled_for(message.topic):
                        await self._add_gap(tp, r_offset + 1, offset)
                    if self._commit_every is not None and self._n_acked >= self._commit_every:
                        self._n_acked = 0
                        await self.commit()
                    if message.topic in topics:
                        batch.append(record_of(message))
                    else:
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                    read_offset[tp] = offset
                if not batch:
                    continue
                if (
                    self.suspend_flow.is_set()
                    or not app.flow_control.is_active()
                    or app.consumer_generation_id != generation
                ):
                    continue  # a rebalance began: it seeks back to the committed offsets
                await sink(batch)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    return drain


def stop_consumer_digest() -> str:
    from faust.app.base import App

    return hashlib.sha256(inspect.getsource(App._stop_consumer).encode()).hexdigest()


def after_fetcher_stops(app: Any, hook: Callable[[], Awaitable[None]]) -> bool:
    """Run `hook` in a graceful stop once the fetcher has stopped (no record is delivered
    after it), before the tables stop and the producer is flushed; False (nothing changed)
    when Faust's stop is not the one this was written for. Faust sends no revocation at a
    stop, and its consumer commits the acked offsets after this."""
    if stop_consumer_digest() != STOP_CONSUMER_DIGEST or not hasattr(app, "_stop_fetcher"):
        return False
    stop_fetcher = app._stop_fetcher

    async def stop_then_run() -> None:
        await stop_fetcher()
        await hook()

    app._stop_fetcher = stop_then_run
    return True


def missing() -> list[str]:
    """The private names above that the installed Faust and aiokafka no longer have."""
    import importlib

    gone = []
    for owner, attribute in (
        CURRENT_EVENT,
        ON_CHANGELOG_SENT,
        FETCH_MAX_WAIT,
        FETCH_MAX_BYTES,
        PARTITION_FETCH_BYTES,
        CONSUMER_THREAD,
        THREAD_CONSUMER,
        CONSUMER_FETCHER,
        DRAIN_MESSAGES,
        READ_OFFSET,
        ADD_GAP,
        N_ACKED,
        COMMIT_EVERY,
        COMMITTED_OFFSET,
        ACKED_INDEX,
        ACKED,
        WAITING_FOR_ACK,
        ACK_LOCK,
        ENSURE_PRODUCER,
        STOP_FETCHER,
        PRODUCER_ACCUMULATOR,
        ACCUMULATOR_COMPRESSION,
    ):
        module_name, _, class_name = owner.rpartition(".")
        try:
            module = importlib.import_module(owner)
            holder: Any = module
        except ImportError:
            try:
                holder = getattr(importlib.import_module(module_name), class_name)
            except (ImportError, AttributeError):
                gone.append(f"{owner} (the module or class)")
                continue
        if not _has(holder, attribute):
            gone.append(f"{owner}.{attribute}")
    return gone


def _has(holder: Any, attribute: str) -> bool:
    """On the module or class, annotated on a class of its MRO, or assigned to `self` in
    one (instance attributes exist only once an object is built)."""
    if hasattr(holder, attribute):
        return True
    import inspect

    for cls in getattr(holder, "__mro__", ()):
        if attribute in getattr(cls, "__annotations__", {}):
            return True
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        if f"self.{attribute} =" in source:
            return True
    return False
