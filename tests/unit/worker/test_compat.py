"""Every private Faust/aiokafka attribute the worker reaches for exists in the pinned versions.

When this fails after an upgrade, `tierstream.worker.compat` names what moved: fix it
there (the only module that reaches into Faust's or aiokafka's privates)."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from types import SimpleNamespace
from typing import Any

import pytest

from tierstream.worker import compat


def test_the_pinned_faust_and_aiokafka_have_every_private_attribute_we_use() -> None:
    assert compat.missing() == [], "Faust or aiokafka moved a private attribute the worker needs"


def test_a_missing_attribute_is_named() -> None:
    class Fetcher:
        def __init__(self) -> None:
            self._fetch_max_wait_ms = 1500

    assert compat._has(Fetcher, "_fetch_max_wait_ms")
    assert not compat._has(Fetcher, "_fetch_min_bytes")


def test_tune_fetch_sets_the_wait_and_the_response_size_through_faust_s_consumer_thread() -> None:
    fetcher = SimpleNamespace(
        _fetch_max_wait_ms=1500, _fetch_max_bytes=52428800, _max_partition_fetch_bytes=1048576
    )
    consumer = SimpleNamespace(_thread=SimpleNamespace(_consumer=SimpleNamespace(_fetcher=fetcher)))
    assert compat.tune_fetch(consumer, 100)
    assert fetcher._fetch_max_wait_ms == 100 and fetcher._fetch_max_bytes == 52428800, "size left alone"
    assert compat.tune_fetch(consumer, 100, 262144)
    assert fetcher._fetch_max_bytes == 262144 and fetcher._max_partition_fetch_bytes == 262144
    assert compat.tune_fetch(consumer, 100, 4194304)
    assert fetcher._max_partition_fetch_bytes == 262144, "a partition's limit is only ever lowered"
    assert not compat.tune_fetch(SimpleNamespace(), 100), "a consumer without the chain is reported"


def test_routed_to_sets_and_restores_faust_s_current_event() -> None:
    from faust.streams import _current_event

    before = _current_event.get(None)
    with compat.routed_to(5, "t.balances"):
        ref = _current_event.get(None)
        assert ref is not None
        event = ref()
        assert event is not None and event.message.partition == 5
    assert _current_event.get(None) is before


def test_faust_s_drain_loop_is_the_one_deliver_in_batches_replaces() -> None:
    assert compat.drain_digest() == compat.DRAIN_DIGEST, (
        "Faust's Consumer._drain_messages changed: re-read it against compat._batch_drain "
        "(read offsets, gaps, commit_every, flow and generation checks), then pin the new digest"
    )


def test_deliver_in_batches_replaces_the_drain_of_that_consumer_only() -> None:
    from faust.transport.consumer import Consumer

    async def sink(records: list[compat.Record]) -> None: ...

    consumer = SimpleNamespace(_read_offset={})
    assert compat.deliver_in_batches(consumer, {"t.balances"}, sink)
    assert consumer._drain_messages.__func__ is not Consumer._drain_messages  # type: ignore[attr-defined]
    assert not compat.deliver_in_batches(SimpleNamespace(), {"t.balances"}, sink), "no read offsets: refused"


def test_faust_s_stop_is_the_one_after_fetcher_stops_hooks_into() -> None:
    assert compat.stop_consumer_digest() == compat.STOP_CONSUMER_DIGEST, (
        "Faust's App._stop_consumer changed: check that the fetcher still stops before the "
        "tables and the producer (the worker's final commit runs between), then pin the new digest"
    )


def test_the_stop_hook_runs_after_the_fetcher_has_stopped() -> None:
    steps: list[str] = []

    async def stop_fetcher() -> None:
        steps.append("fetcher stopped")

    async def final_commit() -> None:
        steps.append("final commit")

    app = SimpleNamespace(_stop_fetcher=stop_fetcher)
    assert compat.after_fetcher_stops(app, final_commit)
    asyncio.run(app._stop_fetcher())
    assert steps == ["fetcher stopped", "final commit"]
    assert not compat.after_fetcher_stops(SimpleNamespace(), final_commit), "no fetcher stop: refused"


def test_a_record_keeps_what_the_worker_reads_of_a_message() -> None:
    message = SimpleNamespace(
        topic="t.balances", partition=2, offset=7, key=b"C1", value=b"{}", timestamp=1.5, headers=[]
    )
    assert compat.record_of(message) == ("t.balances", 2, 7, b"C1", b"{}", 1.5)


def test_acking_offsets_does_what_faust_s_ack_does_for_each_message() -> None:
    """As `Consumer.ack`: each offset once, none below the committed one, counted for
    `commit_every`, and a waiter woken."""
    from collections import defaultdict

    from faust.types.tuples import TP

    tp = TP("t.balances", 1)

    class Waiter:  # the future `ack` wakes (`mode.utils.futures.notify`)
        woken = False

        def done(self) -> bool:
            return self.woken

        def set_result(self, result: object) -> None:
            self.woken = True

    waiter = Waiter()
    consumer = SimpleNamespace(
        app=SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: topic == "t.balances")),
        _committed_offset=defaultdict(lambda: None, {tp: 5}),
        _acked_index=defaultdict(set),
        _acked=defaultdict(list),
        _n_acked=0,
        _waiting_for_ack=waiter,
    )
    compat.ack_offsets(consumer, "t.balances", 1, [4, 5, 6, 6, 8])
    assert consumer._acked[tp] == [5, 6, 8] and consumer._acked_index[tp] == {5, 6, 8}
    assert consumer._n_acked == 3 and waiter.done()
    compat.ack_offsets(consumer, "t.other", 1, [9])  # acks off for that topic: nothing
    assert TP("t.other", 1) not in consumer._acked and consumer._n_acked == 3


def test_faust_s_ack_is_the_one_ack_offsets_mirrors() -> None:
    """`ack_offsets` repeats `Consumer.ack`'s bookkeeping: a change to it means re-reading both."""
    from faust.transport.consumer import Consumer

    source = inspect.getsource(Consumer.ack)
    for name in ("ack_lock", "_committed_offset", "_acked_index", "_acked", "_n_acked", "_waiting_for_ack"):
        assert name in source, f"Consumer.ack no longer uses {name}: re-read compat.ack_offsets"
    assert hashlib.sha256(source.encode()).hexdigest() == compat.ACK_DIGEST, (
        "Faust's Consumer.ack changed: re-read compat.ack_offsets against it, then pin the new digest"
    )


class _Batch:
    def __init__(self, room: int) -> None:
        self.room = room
        self.records: list[tuple[bytes | None, bytes]] = []

    def append(self, *, key: bytes | None, value: bytes, timestamp: int | None) -> object | None:
        if len(self.records) >= self.room:
            return None
        self.records.append((key, value))
        return object()

    def record_count(self) -> int:
        return len(self.records)


class _KafkaProducer:
    """aiokafka's batch API, recording what was sent."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.sent: list[tuple[str, int, list[tuple[bytes | None, bytes]]]] = []

    def create_batch(self) -> _Batch:
        return _Batch(self.room)

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> asyncio.Future[None]:
        self.sent.append((topic, partition, batch.records))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def test_send_batches_sends_one_batch_per_partition_in_order_and_splits_full_ones() -> None:
    kafka = _KafkaProducer(room=2)
    faust_producer = SimpleNamespace(_ensure_producer=lambda: kafka)
    records = [(0, b"a", b"1"), (1, b"b", b"2"), (0, b"c", b"3"), (0, b"d", b"4")]
    futures = asyncio.run(compat.send_batches(faust_producer, "t", records))
    assert futures is not None and len(futures) == 3
    assert kafka.sent == [
        ("t", 0, [(b"a", b"1"), (b"c", b"3")]),
        ("t", 0, [(b"d", b"4")]),
        ("t", 1, [(b"b", b"2")]),
    ]


def test_send_batches_sends_nothing_without_faust_s_aiokafka_producer() -> None:
    assert asyncio.run(compat.send_batches(SimpleNamespace(), "t", [(0, b"a", b"1")])) is None


def _records_that_fit(make_batch: Any, value: bytes) -> int:
    batch, n = make_batch(), 0
    while batch.append(key=b"k", value=value, timestamp=None) is not None:
        n += 1
    return n


def test_state_batches_are_as_large_as_asked_in_the_producer_s_compression(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A commit's state records go out a batch per round trip: their batches are
    STATE_BATCH_BYTES, not the producer's 16 KB (the names read are checked by
    `missing()` against the installed aiokafka)."""
    from aiokafka.producer.message_accumulator import BatchBuilder

    kafka = SimpleNamespace(
        _message_accumulator=SimpleNamespace(_compression_type=1),  # gzip
        create_batch=lambda: BatchBuilder(16384, 1),
    )
    value = bytes(range(256)) * 3  # ~0.7 KB, as a customer's state
    own = _records_that_fit(kafka.create_batch, value)
    large = _records_that_fit(compat.batch_maker(kafka, 512 * 1024), value)
    assert own < 30 and large > 600
    made: list[tuple[int, int]] = []
    monkeypatch.setattr(
        "aiokafka.producer.message_accumulator.BatchBuilder", lambda size, codec: made.append((size, codec))
    )
    compat.batch_maker(kafka, 512 * 1024)()
    assert made == [(512 * 1024, 1)]


def test_without_the_accumulator_state_batches_are_the_producer_s_own() -> None:
    kafka = _KafkaProducer(room=2)
    assert compat.batch_maker(kafka, 512 * 1024) == kafka.create_batch
    assert compat.batch_maker(kafka, None) == kafka.create_batch
