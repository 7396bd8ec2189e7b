"""Every private Faust/aiokafka attribute the worker reaches for exists in the pinned versions.

When this fails after an upgrade, `tierstream.worker.compat` names what moved: fix it
there (the only module that reaches into Faust's or aiokafka's privates)."""

from __future__ import annotations

from types import SimpleNamespace

from tierstream.worker import compat


def test_the_pinned_faust_and_aiokafka_have_every_private_attribute_we_use() -> None:
    assert compat.missing() == [], "Faust or aiokafka moved a private attribute the worker needs"


def test_a_missing_attribute_is_named() -> None:
    class Fetcher:
        def __init__(self) -> None:
            self._fetch_max_wait_ms = 1500

    assert compat._has(Fetcher, "_fetch_max_wait_ms")
    assert not compat._has(Fetcher, "_fetch_min_bytes")


def test_tune_fetch_sets_the_wait_through_faust_s_consumer_thread() -> None:
    fetcher = SimpleNamespace(_fetch_max_wait_ms=1500)
    consumer = SimpleNamespace(_thread=SimpleNamespace(_consumer=SimpleNamespace(_fetcher=fetcher)))
    assert compat.tune_fetch(consumer, 100)
    assert fetcher._fetch_max_wait_ms == 100
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

    async def sink(records: list[compat.Delivered]) -> None: ...

    consumer = SimpleNamespace(_read_offset={})
    assert compat.deliver_in_batches(consumer, {"t.balances"}, sink)
    assert consumer._drain_messages.__func__ is not Consumer._drain_messages  # type: ignore[attr-defined]
    assert not compat.deliver_in_batches(SimpleNamespace(), {"t.balances"}, sink), "no read offsets: refused"


def test_a_delivered_record_acks_its_message_through_the_consumer() -> None:
    acked = []
    message = SimpleNamespace(ack=lambda consumer: acked.append(consumer) or True)
    assert compat.Delivered(message, "the consumer").ack()
    assert acked == ["the consumer"]
