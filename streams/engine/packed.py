"""Customers at rest as packed bytes, a bounded number of them decoded (issue 13).

A decoded `Customer` is a few dozen Python objects (~2.7 KB of memory); packed, the
same state is one `bytes` of ~1.05 KB: its arrays as raw bytes, the rest through
`marshal`, which keeps ints of any size, bools, None, strings, tuples, lists and dicts
exactly and writes a shared object (one profile event's stamp) once. Attribute names
and segment values are numbered in a table of this process. The packing never leaves
the process (it is not the codec's wire format: `marshal` may change between Python
versions, and the table is the process's own), so it has no format version.
`PackedCustomers` holds every customer of an engine with at most `limit` of them
decoded, the most recently used; `simulate` switches to it once a bank has more
customers than that. A packed customer costs a pack and an unpack (~60,000 machine
instructions, a third of an event's) each time it is read again (docs/decisions.md).
"""

from __future__ import annotations

import marshal
import sys
from array import array
from collections import OrderedDict
from collections.abc import Iterator, Mapping, MutableMapping
from decimal import Decimal
from typing import Any

from .jsonio import JsonNumber
from .ledger import Customer, Layout, Seen

#: what simulate keeps decoded by default: ~140 MB of decoded customers at most
DEFAULT_DECODED = 50_000


#: tuples many customers share (attribute names, segment values), numbered: a packed
#: customer holds the number (the packing never leaves the process), or the tuple itself
#: once the table is full
_TUPLES: dict[tuple[Any, ...], int] = {}
_BY_NUMBER: list[tuple[Any, ...]] = []
_TABLE_LIMIT = 1 << 16


def _number(shared: tuple[Any, ...]) -> int | tuple[Any, ...]:
    number = _TUPLES.get(shared)
    if number is None:
        if len(_BY_NUMBER) >= _TABLE_LIMIT:
            return shared
        number = _TUPLES[shared] = len(_BY_NUMBER)
        _BY_NUMBER.append(shared)
    return number


def _numbered(held: int | tuple[Any, ...]) -> tuple[Any, ...]:
    return _BY_NUMBER[held] if isinstance(held, int) else held


#: a ring of values in [0, 256) (a count, a day without outflow) is packed one byte a
#: value: the low bytes of a little-endian array, taken and put back by slicing
_BYTE_RINGS = sys.byteorder == "little"


def _ring_parts(rings: array[int], layout: Layout) -> tuple[Any, ...]:
    """The rings' typecode, then each series' ring as its raw bytes, or as one byte a
    value when they all fit one (the array has the widest type any series needs)."""
    parts: list[Any] = [rings.typecode]
    width = rings.itemsize
    for spec, at in zip(layout.specs, layout.ring_at, strict=True):
        raw = rings[at : at + spec.size].tobytes()
        if _BYTE_RINGS and width > 1:
            low = raw[::width]
            wide = bytearray(len(raw))
            wide[::width] = low
            if wide == raw:  # every value's other bytes are 0
                raw = low
        parts.append(raw)
    return tuple(parts)


def _rings(parts: tuple[Any, ...], layout: Layout) -> array[int]:
    rings = array(parts[0])
    width = rings.itemsize
    for spec, raw in zip(layout.specs, parts[1:], strict=True):
        if len(raw) < spec.size * width:  # one byte a value
            wide = bytearray(spec.size * width)
            wide[::width] = raw
            raw = wide
        rings.frombytes(raw)
    return rings


def _ids_out(ids: str) -> str | tuple[str, str]:
    """Newline-joined event ids, or (their common prefix, the ids without it): ids are
    often numbered in sequence ("C000123-000045"), so they share most of their text."""
    parts = ids.split("\n")
    low, high = min(parts), max(parts)  # the prefix every id shares is theirs
    cut, most = 0, min(len(low), len(high))
    while cut < most:  # the longest common prefix, by halves
        mid = (cut + most + 1) // 2
        if low[:mid] == high[:mid]:
            cut = mid
        else:
            most = mid - 1
    if cut < 4:
        return ids
    prefix = low[:cut]
    return prefix, ids[cut:].replace("\n" + prefix, "\n")


def _ids_in(held: str | tuple[str, str]) -> str:
    if isinstance(held, str):
        return held
    prefix, rest = held
    return prefix + rest.replace("\n", "\n" + prefix)


def _state(
    c: Customer, values: tuple[Any, ...], decimals: tuple[tuple[int, bool, str], ...]
) -> tuple[Any, ...]:
    seen, rings, obs, segments = c.seen, c.rings, c.obs, c.segments
    return (
        c.first_day,
        c.day,
        c.last_instant,
        c.tier,
        c.tier_since,
        c.below_since,
        c.last_txn_day,
        c.dormant_fired,
        c.churn_risk,
        _ring_parts(rings, c.layout) if isinstance(rings, array) else (),
        () if isinstance(rings, array) else rings,  # a list: values past 64 bits
        c.sums,
        c.account_ids,
        obs.tobytes() if isinstance(obs, array) else obs,
        _ids_out(c.obs_ids) if c.obs_ids else "",
        _number(c.attr_names),
        values,
        decimals,
        c.attr_stamps,  # one profile event's stamp is one object: marshal writes it once
        c.opportunities,
        c.warnings,
        seen.fingerprints.tobytes(),
        seen.days.tobytes(),
        None if segments is None else _number(tuple(segments)),
        c.peak_day,
        c.peak,
    )


def pack(c: Customer) -> bytes:
    """The customer as bytes (`unpack` gives back an equal customer)."""
    values = c.attr_values
    try:
        data = marshal.dumps(_state(c, values, ()))
    except ValueError:  # a decimal attribute: held as (position, kept its JSON text, text)
        decimals = tuple(
            (i, isinstance(v, JsonNumber), v.text if isinstance(v, JsonNumber) else str(v))
            for i, v in enumerate(values)
            if isinstance(v, Decimal)
        )
        values = tuple(None if isinstance(v, Decimal) else v for v in values)
        data = marshal.dumps(_state(c, values, decimals))
    # Sizes rounded up to 64 bytes (marshal.loads ignores what follows the object): freed
    # blocks of a few sizes are reused, where blocks of every size left memory in pieces
    # (peak RSS 19.9 -> 15.5 MB for 10,000 customers, 500 of them decoded).
    return data + bytes(-len(data) % 64)


def unpack(data: bytes, layout: Layout) -> Customer:
    """The customer `pack` packed, under the layout it had."""
    (
        first_day,
        day,
        last_instant,
        tier,
        tier_since,
        below_since,
        last_txn_day,
        dormant_fired,
        churn_risk,
        ring_parts,
        rings,
        sums,
        account_ids,
        obs,
        obs_ids,
        attr_names,
        attr_values,
        decimals,
        attr_stamps,
        opportunities,
        warnings,
        fingerprints,
        days,
        segments,
        peak_day,
        peak,
    ) = marshal.loads(data)
    # Customer.__new__ alone would skip __init__, which a mypyc-compiled Customer refuses;
    # every field __init__ sets is set again below.
    c = Customer(first_day, last_instant, layout)
    c.day = day
    c.tier, c.tier_since, c.below_since = tier, tier_since, below_since
    c.last_txn_day, c.dormant_fired, c.churn_risk = last_txn_day, dormant_fired, churn_risk
    c.rings = _rings(ring_parts, layout) if ring_parts else rings
    c.sums, c.account_ids, c.obs_ids = sums, account_ids, _ids_in(obs_ids)
    if type(obs) is bytes:
        records = array("q")
        records.frombytes(obs)
        c.obs = records
    else:
        c.obs = obs
    c.attr_names, c.attr_stamps = _numbered(attr_names), attr_stamps
    if decimals:
        listed = list(attr_values)
        for i, kept, text in decimals:
            listed[i] = JsonNumber(text) if kept else Decimal(text)
        attr_values = tuple(listed)
    c.attr_values = attr_values
    c.opportunities, c.warnings = opportunities, warnings
    seen = c.seen = Seen()
    seen.fingerprints.frombytes(fingerprints)
    seen.days.frombytes(days)
    c.segments = None if segments is None else list(_numbered(segments))
    c.peak_day, c.peak = peak_day, peak
    return c


class PackedCustomers(MutableMapping[str, Customer]):
    """Every customer of an engine, first seen first, at most `limit` of them decoded
    (the most recently used); the others packed.

    A decoded customer handed out stays valid until `limit` other customers have been
    read or written: the engine reads a customer again after anything that may sweep.
    """

    def __init__(self, layout: Layout, limit: int, customers: Mapping[str, Customer] | None = None) -> None:
        if limit < 1:
            raise ValueError("at least one customer must be kept decoded")
        self.layout = layout
        self.limit = limit
        self.held: dict[str, Customer | bytes] = dict(customers or {})
        self.decoded: OrderedDict[str, None] = OrderedDict.fromkeys(self.held)
        self._evict()

    def _evict(self) -> None:
        decoded, held = self.decoded, self.held
        while len(decoded) > self.limit:
            cid, _ = decoded.popitem(last=False)
            c = held[cid]
            assert isinstance(c, Customer)
            held[cid] = pack(c)

    def __getitem__(self, cid: str) -> Customer:
        c = self.held[cid]
        if isinstance(c, Customer):
            self.decoded.move_to_end(cid)
            return c
        c = self.held[cid] = unpack(c, self.layout)
        self.decoded[cid] = None
        if len(self.decoded) > self.limit:
            self._evict()
        return c

    def get(self, cid: str, default: Any = None) -> Any:
        return self[cid] if cid in self.held else default

    def __contains__(self, cid: object) -> bool:
        return cid in self.held

    def __setitem__(self, cid: str, c: Customer) -> None:
        self.held[cid] = c
        self.decoded[cid] = None
        self.decoded.move_to_end(cid)
        if len(self.decoded) > self.limit:
            self._evict()

    def __delitem__(self, cid: str) -> None:  # pragma: no cover - customers are never deleted
        raise NotImplementedError("customers are not deleted")

    def __iter__(self) -> Iterator[str]:
        return iter(self.held)

    def __len__(self) -> int:
        return len(self.held)

    def packed_bytes(self) -> int:
        """The bytes of every packed customer (for the benchmark's breakdown)."""
        return sum(len(v) for v in self.held.values() if isinstance(v, bytes))
