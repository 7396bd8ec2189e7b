"""The customers table seen by one partition: decoded customers, the partition marker.

No Faust import: the table is any mapping of bytes to bytes (Faust's table in the
worker, a dict in the tests); routing reads and writes to the right partition is the
caller's job (`compat.routed_to`).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import orjson

from ..contract import DLQ, MARKER_PREFIX, marker_key, marker_value
from ..engine import codec
from ..engine.evaluate import Output
from ..engine.ledger import Customer, SeriesSpec
from ..engine.partition import PartitionEngine
from ..engine.rules import SEGMENT_NAMES

#: customers a sweep catches up between two trims of the decoded cache
SWEEP_SLICE = 5_000
#: `loaded` of a customer read back from its spilled state: unlike any encoding, so the
#: next commit writes it (the table holds an older state, or none: `Spilled.new`)
UNWRITTEN = b""


@dataclass(slots=True)
class Spilled:
    """A changed customer's state, encoded to leave the decoded cache before its commit."""

    state: bytes
    #: the table holds no state of this customer yet (its commit counts it in the base tier)
    new: bool


class CustomerStore(MutableMapping[str, Customer]):
    """Decoded customers of one partition over the Faust table (write-back cache).

    At most `limit` customers stay decoded past a batch, a commit's slice or a slice of a
    sweep (the oldest read are dropped first), besides those a commit in flight has yet to
    encode; the table holds every customer encoded. Past `limit`, changed customers are
    encoded early (`spilled`, ~0.4 KB against ~2.3 KB decoded) and written by the next
    commit: neither a backlog of many customers nor a day boundary that changes every
    customer of the partition holds them all decoded."""

    def __init__(
        self, table: Any, specs: tuple[SeriesSpec, ...], limit: int = 50_000, partition: int = 0
    ) -> None:
        self.table = table
        self.specs = specs
        self.limit = limit
        self.partition = partition
        self.cache: dict[str, Customer] = {}
        self.loaded: dict[str, bytes | None] = {}  # bytes as read, to skip unchanged writes
        self.touched: set[str] = set()
        #: taken by the commit in flight and not yet encoded and served: never dropped
        self.encoding: set[str] = set()
        #: changed since the last commit took its customers, encoded, not decoded
        self.spilled: dict[str, Spilled] = {}
        #: spilled states the commit in flight took, until it has put them in the table
        self.writing: dict[str, Spilled] = {}
        #: customers created since the worker last took them (it checks their routing)
        self.created: list[str] = []
        #: changed customers encoded early by `trim` to stay within `limit`, ever
        self.spills = 0
        #: off during sweeps: boundary catch-up is a pure function of the stored state
        #: and the day, so an older stored state catches up to the same result later.
        self.tracking = True

    def __getitem__(self, cid: str) -> Customer:
        c = self.cache.get(cid)
        if c is None:
            spilled = self.spilled.pop(cid, None)
            if spilled is not None:  # changed and not written yet: whoever reads it
                c = codec.decode(spilled.state, self.specs)
                self.cache[cid] = c
                self.loaded[cid] = None if spilled.new else UNWRITTEN
                self.touched.add(cid)
                return c
            raw = self.writing.get(cid)  # being written by the commit in flight
            state = self.table.get(cid.encode("utf-8")) if raw is None else raw.state
            if state is None:
                raise KeyError(cid)
            c = codec.decode(state, self.specs)
            self.cache[cid] = c
            self.loaded[cid] = state
        if self.tracking:
            self.touched.add(cid)
        return c

    def __setitem__(self, cid: str, c: Customer) -> None:
        if cid not in self.cache and self.stored(cid) is None:
            self.created.append(cid)
        self.cache[cid] = c
        self.loaded.setdefault(cid, None)
        self.touched.add(cid)

    def __delitem__(self, cid: str) -> None:  # pragma: no cover - customers are never deleted
        raise NotImplementedError("customers are not deleted")

    def __iter__(self) -> Iterator[str]:
        return iter(self.customer_ids())

    def __len__(self) -> int:
        return len(self.customer_ids())

    def customer_ids(self) -> list[str]:
        """Every customer of the partition, sorted: those in the table and those not written
        yet. Read from the table when asked (sweeps, a Redis refresh: each reads every
        customer anyway), not kept: a set of every id was ~0.14 KB a customer
        (docs/decisions.md 141)."""
        partition = self.partition
        ids = {
            key.decode("utf-8")
            for key, raw in self.table.items()
            if raw is not None and not key.startswith(MARKER_PREFIX) and codec.partition_of(raw) == partition
        }
        ids.update(self.cache)
        ids.update(self.spilled)
        ids.update(self.writing)
        return sorted(ids)

    def take_touched(self, partition: int) -> list[tuple[str, bytes, bool]]:
        """Encode every customer whose state changed: (id, state, first write)."""
        changed = self.encode_changed(self.take_touched_ids(), partition)
        self.trim()  # before the encoding set is cleared: the caller serves the changed ones decoded
        self.encoding.clear()
        self.writing.clear()
        return changed

    def take_touched_ids(self) -> list[str]:
        """The customers changed so far, to be encoded by `encode_changed`; later changes
        go to the next commit. The touched ones stay decoded (`encoding`) and the spilled
        ones readable (`writing`) until `finish_encoding`."""
        touched, self.touched = self.touched, set()
        self.encoding |= touched
        spilled, self.spilled = self.spilled, {}
        self.writing.update(spilled)
        return [*touched, *spilled]

    def encode_changed(self, cids: list[str], partition: int) -> list[tuple[str, bytes, bool]]:
        """Encode these customers and keep those whose state changed: (id, state, first write)."""
        changed = []
        cache, loaded, specs, writing = self.cache, self.loaded, self.specs, self.writing
        for cid in cids:
            spilled = writing.get(cid)
            if spilled is not None:  # encoded already (a newer decoded one is touched)
                changed.append((cid, spilled.state, spilled.new))
                continue
            blob = codec.encode(cache[cid], specs, partition)
            before = loaded.get(cid)
            if blob != before:
                loaded[cid] = blob
                changed.append((cid, blob, before is None))
        return changed

    def encoded(self, cids: list[str]) -> None:
        """These customers the commit in flight took are in the table now (and served): the
        next trim may drop them, and a read finds their new state in the table."""
        self.encoding.difference_update(cids)
        writing = self.writing
        if writing:
            for cid in cids:
                writing.pop(cid, None)

    def finish_encoding(self) -> None:
        """The commit's customers are encoded, in the table and served: they may be dropped
        now, and those changed since, past `limit`, spilled (the commit held them decoded:
        a trim meanwhile could not take them)."""
        self.encoding.clear()
        self.writing.clear()
        self.trim(spill=True)

    def stored(self, cid: str) -> bytes | None:
        """The customer's latest encoded state when it is not decoded: spilled, being
        written by the commit in flight, or the table's (None: no state)."""
        spilled = self.spilled.get(cid) or self.writing.get(cid)
        if spilled is not None:
            return spilled.state
        state: bytes | None = self.table.get(cid.encode("utf-8"))
        return state

    def trim(self, spill: bool = False) -> None:
        """Drop the oldest decoded customers past `limit`: first those not touched since the
        last commit, then (still past `limit`, and `spill`: the worker's, after each batch and
        sweep slice) touched ones, spilled: encoded now, written by the next commit, which
        would have encoded them anyway; one read again before it costs a decode and an
        encode more. Never one a commit in flight took and has not encoded yet
        (`encoding`). Without spilling, behind a backlog of many more customers than the
        budget, every customer a commit's records touched stayed decoded until that commit
        had encoded it: up to three times the budget (docs/decisions.md 137). An untouched
        one equals its stored state, or differs only by a sweep's catch-up, which is a pure
        function of that state and the day (and one whose catch-up produced outputs is
        marked touched)."""
        excess = len(self.cache) - self.limit
        if excess <= 0:
            return
        touched, encoding = self.touched, self.encoding
        cache, loaded = self.cache, self.loaded
        kept = (cid for cid in cache if cid not in touched and cid not in encoding)
        dropped = list(islice(kept, excess))
        for cid in dropped:
            del cache[cid]
            del loaded[cid]
        excess -= len(dropped)
        if excess <= 0 or not spill:
            return
        changed = (cid for cid in cache if cid in touched and cid not in encoding)
        specs, partition, spilled = self.specs, self.partition, self.spilled
        for cid in list(islice(changed, excess)):
            blob = codec.encode(cache.pop(cid), specs, partition)
            before = loaded.pop(cid)
            touched.discard(cid)
            if blob != before:
                spilled[cid] = Spilled(blob, before is None)
            self.spills += 1

    def sweep(self, engine: PartitionEngine, out: list[Output]) -> None:
        """`sweep_slices`, every slice's outputs into `out`."""
        for outputs in self.sweep_slices(engine):
            out += outputs

    def sweep_slices(self, engine: PartitionEngine) -> Iterator[list[Output]]:
        """Catch every customer up to the engine's clock day (`engine.sweep`'s order), a
        slice at a time, yielding each slice's outputs (the worker sends them before the
        next slice: a boundary that changes every customer does not hold all their outputs):
        customers whose catch-up produced outputs are marked touched (they are written at
        the next commit, so stored state, sent outputs and the marker's tier counts agree
        after a restart), the others are dropped past `limit` as the sweep goes, and changed
        ones past it spilled, so a sweep does not hold the whole partition decoded."""
        ids = self.customer_ids()
        for start in range(0, len(ids), SWEEP_SLICE):
            out: list[Output] = []
            self.tracking = False
            try:
                engine.sweep(out, ids[start : start + SWEEP_SLICE])
            finally:
                self.tracking = True
            self.touched.update(key for topic, key, _ in out if topic != DLQ and key)
            self.trim(spill=True)
            yield out

    def count_stored(
        self,
        partition: int,
        tier_ids: tuple[str, ...],
        each: Callable[[str, Customer], None] | None = None,
    ) -> StoredCounts:
        """The partition's customers (the table keys whose state says so) per tier and per
        segment value, counted from their states: a crash between
        a commit's state writes and its marker leaves states the marker's counts do not
        include (their records come back as duplicates, so nothing would count them again).
        `each` sees every decoded state (the worker serves them to Redis again: a crash
        before a commit's Redis write would leave them stale for good)."""
        counts = StoredCounts()
        for key, raw in self.table.items():
            if key.startswith(MARKER_PREFIX) or raw is None:
                continue
            if codec.partition_of(raw) == partition:
                cid = key.decode("utf-8")
                c = codec.decode(raw, self.specs)
                if each is not None:
                    each(cid, c)
                counts.tiers[tier_ids[c.tier]] += 1
                for name, value in zip(SEGMENT_NAMES, c.segments or (), strict=False):
                    if value:
                        counts.segments[(name, value)] += 1
        return counts


@dataclass
class StoredCounts:
    tiers: Counter[str] = field(default_factory=Counter)
    segments: Counter[tuple[str, str]] = field(default_factory=Counter)


@dataclass
class Partition:
    """Everything the worker holds for one assigned partition number."""

    number: int
    engine: PartitionEngine
    store: CustomerStore
    queues: dict[str, deque[Any]] = field(default_factory=dict)
    waiting_since: float | None = None
    #: an input topic waited for because it was never fetched (see merge.release)
    unfetched: str | None = None
    #: highest applied offset per input topic (from the marker after a restart)
    applied: dict[str, int] = field(default_factory=dict)
    #: highest offset received per input topic (for drain checks)
    received: dict[str, int] = field(default_factory=dict)
    #: highest offset fully done (outputs delivered, state written) per input topic: lag
    acked: dict[str, int] = field(default_factory=dict)
    swept_day: int | None = None
    #: customers per tier (kept in the marker, and counted again from the states at load)
    tier_counts: dict[str, int] = field(default_factory=dict)
    #: customers per (segment, value) published: counted at load, then moved by the engine
    segment_counts: Counter[tuple[str, str]] = field(default_factory=Counter)

    def take_segment_moves(self) -> None:
        """Apply the segment changes the engine made since the last call."""
        moves = self.engine.evaluator.segment_moves
        for (name, old, new), n in moves.items():
            if old is not None:
                self.segment_counts[(name, old)] -= n
            self.segment_counts[(name, new)] += n
        moves.clear()


class ShapeMismatch(Exception):
    """The table was written under rules of another shape (tiers, day rings)."""


def load_marker(
    part: Partition, table: Mapping[bytes, Any], shape: dict[str, Any], topic_index: dict[str, int]
) -> None:
    """Restore the partition's clock, swept day, tier counts and applied offsets from its
    marker (nothing when there is none). Raises ShapeMismatch (the reason) when the
    stored state has another shape than `shape`."""
    raw = table.get(marker_key(part.number))
    if raw is None:
        return
    doc = orjson.loads(raw)
    stored = doc.get("shape")  # markers before this field carry none
    if stored is not None:
        why = codec.shape_mismatch(stored, shape)
        if why is not None:
            raise ShapeMismatch(why)
    part.engine.clock = doc["clock"]
    part.engine.clock_day = doc["clock_day"]
    part.swept_day = doc.get("swept_day")
    part.tier_counts = dict(doc.get("counts", {}))
    part.applied = {t: doc["offsets"][str(i)] for t, i in topic_index.items() if str(i) in doc["offsets"]}


def marker_of(part: Partition, shape: dict[str, Any], topic_index: dict[str, int]) -> bytes:
    """The partition's marker as it stands now."""
    engine = part.engine
    offsets = {topic_index[t]: o for t, o in part.applied.items()}
    return marker_value(shape, engine.clock, engine.clock_day, part.swept_day, part.tier_counts, offsets)


def share_decoded(stores: list[CustomerStore], total: int) -> None:
    """Split the worker's decoded-customer budget (`decoded_customers`) evenly among the
    stores of the partitions it holds."""
    for store in stores:
        store.limit = max(1, total // max(1, len(stores)))
