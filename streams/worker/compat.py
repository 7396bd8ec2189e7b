"""Every reach into Faust's or aiokafka's private attributes, in one place.

Faust (faust-streaming 0.15.3) and aiokafka (0.14.0) are pinned in pyproject.toml.
The worker needs three things neither offers publicly; each is wrapped here, and
`missing()` names any of them a version no longer has (tests/unit/worker/test_compat.py
fails loudly on an upgrade that moved one):

* `faust.streams._current_event`: the context variable Faust reads to route table
  reads and writes to a partition (`routed_to`).
* the aiokafka fetcher's `_fetch_max_wait_ms`, behind Faust's consumer thread
  (`consumer._thread._consumer._fetcher`), which Faust fixes at 1500 ms (`tune_fetch`).
* `Table._on_changelog_sent`, the callback that records a changelog offset as the
  RocksDB checkpoint (`changelog_callback`).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

from faust.streams import _current_event

#: (owner, attribute) of every private name used here, for `missing()`
CURRENT_EVENT = ("faust.streams", "_current_event")
ON_CHANGELOG_SENT = ("faust.tables.base.Collection", "_on_changelog_sent")
FETCH_MAX_WAIT = ("aiokafka.consumer.fetcher.Fetcher", "_fetch_max_wait_ms")
CONSUMER_THREAD = ("faust.transport.drivers.aiokafka.Consumer", "_thread")
THREAD_CONSUMER = ("faust.transport.drivers.aiokafka.AIOKafkaConsumerThread", "_consumer")
CONSUMER_FETCHER = ("aiokafka.consumer.consumer.AIOKafkaConsumer", "_fetcher")


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


def tune_fetch(consumer: Any, fetch_max_wait_ms: int) -> bool:
    """Set the fetch wait of Faust's aiokafka consumer; False when it cannot be found.

    Faust creates its aiokafka consumer with fetch_max_wait_ms=1500 and no way to
    change it. Tansu answers a fetch only when that wait is over, even when records
    arrive meanwhile (measured: p50 delivery 374 ms at 1500, 28 ms at 100), which
    would put over a second into event-to-output latency. The fetcher reads the
    value for every request, so setting it takes effect at the next fetch."""
    inner = getattr(getattr(consumer, "_thread", None), "_consumer", None)
    fetcher = getattr(inner, "_fetcher", None)
    if fetcher is None or not hasattr(fetcher, "_fetch_max_wait_ms"):
        return False
    fetcher._fetch_max_wait_ms = fetch_max_wait_ms
    return True


def changelog_callback(table: Any) -> Callable[..., Any]:
    """The table's own changelog-sent callback: it records the offset as the checkpoint."""
    callback: Callable[..., Any] = table._on_changelog_sent
    return callback


def missing() -> list[str]:
    """The private names above that the installed Faust and aiokafka no longer have."""
    import importlib

    gone = []
    for owner, attribute in (
        CURRENT_EVENT,
        ON_CHANGELOG_SENT,
        FETCH_MAX_WAIT,
        CONSUMER_THREAD,
        THREAD_CONSUMER,
        CONSUMER_FETCHER,
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
