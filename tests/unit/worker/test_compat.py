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
