"""Customer state <-> compact bytes (the worker's table values and changelog records).

Layout: the partition number (2 bytes, so a recovered table can be split by
partition without decoding), then the compressed JSON of a versioned list. Day rings
are written in day order as deltas from the previous day, so a balance that does not
move costs one character a day before compression and almost nothing after it.
Decimal attributes keep their text.

Compression is a zstd frame (level 3, one reused context): for these ~2 KB documents
it took 14 us against zlib's 35 (whose every call sets up and frees ~256 KB of state),
with slightly smaller output, and a commit encodes every customer it changed (decision
121). The frame uses a dictionary trained on states (`state-<id>.zdict`, made by
`bench.state_dictionary`): a state compressed alone spent most of its bytes describing
the structure every state shares, and the dictionary carries it once (decision 138).
A frame names its dictionary; frames without one (written before) are still read, and
so are zlib streams (before zstd): the first byte tells them apart (a zlib stream
starts 0x78, a zstd frame 0x28).
"""

from __future__ import annotations

import itertools
import operator
import zlib
from decimal import Decimal
from importlib import resources
from typing import Any

import orjson
import zstandard

from .ledger import Customer, Seen, SeriesSpec, layout_of

#: 4 holds observations and seen fingerprints as the customer holds them (columns), 3 added
#: segments, 2 churn_risk; 1 to 3 are still read
FORMAT = 4


def _ring_out(days: list[int]) -> list[int]:
    """A ring's values in day order (oldest first) as deltas from the previous day."""
    return [days[0], *map(operator.sub, days[1:], days[:-1])]


def _attr_out(value: Any) -> Any:
    return {"d": str(value)} if isinstance(value, Decimal) else value


def _attr_in(value: Any) -> Any:
    return Decimal(value["d"]) if isinstance(value, dict) else value


#: zstd level of every state written
LEVEL = 3
#: the dictionary states are written with (a private id: zstd reserves below 32,768)
DICTIONARY_ID = 0x74530001
#: bytes of a trained dictionary (`bench.state_dictionary`)
DICTIONARY_BYTES = 16 * 1024
#: every dictionary states may have been written with, by id: never removed
DICTIONARIES = (DICTIONARY_ID,)


def _dictionary(dict_id: int) -> zstandard.ZstdCompressionDict:
    data = resources.files("tierstream.engine").joinpath(f"state-{dict_id:08x}.zdict").read_bytes()
    return zstandard.ZstdCompressionDict(data)


_written_with = _dictionary(DICTIONARY_ID)
_compress = zstandard.ZstdCompressor(level=LEVEL, dict_data=_written_with).compress
_decompress_plain = zstandard.ZstdDecompressor().decompress
_decompress_with = {i: zstandard.ZstdDecompressor(dict_data=_dictionary(i)).decompress for i in DICTIONARIES}
#: first byte of a zlib stream at the default window: states written before zstd
ZLIB_FIRST_BYTE = 0x78
#: offset of a zstd frame's header descriptor, whose two low bits say if it names a dictionary
FRAME_DESCRIPTOR = 4


def pack(doc: list[Any], partition: int) -> bytes:
    """The stored bytes of a state document."""
    return partition.to_bytes(2, "big") + _compress(orjson.dumps(doc))


def unpack(data: bytes) -> list[Any]:
    """The state document of stored bytes (zstd with or without a dictionary, or zlib as
    written before)."""
    body = data[2:]
    if body[0] == ZLIB_FIRST_BYTE:
        raw = zlib.decompress(body)
    elif len(body) > FRAME_DESCRIPTOR and body[FRAME_DESCRIPTOR] & 3:
        raw = _with_dictionary(body)
    else:
        raw = _decompress_plain(body)
    doc: list[Any] = orjson.loads(raw)
    return doc


def _with_dictionary(body: bytes) -> bytes:
    dict_id = zstandard.get_frame_parameters(body).dict_id
    decompress = _decompress_with.get(dict_id)
    if decompress is None:
        raise ValueError(
            f"a customer state compressed with zstd dictionary {dict_id:#x}, which this tierstream "
            f"does not have (it has {', '.join(f'{i:#x}' for i in DICTIONARIES)}): it was written by a "
            "newer tierstream; run that version (docs/operations.md, 'Upgrading tierstream itself')"
        )
    return decompress(body)


def partition_of(data: bytes) -> int:
    """The partition a state record belongs to (its first two bytes)."""
    return int.from_bytes(data[:2], "big")


def encode(c: Customer, specs: tuple[SeriesSpec, ...], partition: int = 0) -> bytes:
    return pack(document(c), partition)


def document(c: Customer) -> list[Any]:
    """The state document of a customer, before it is compressed."""
    return [
        FORMAT,
        c.first_day,
        c.day,
        c.last_instant,
        c.tier,
        c.tier_since,
        c.below_since,
        c.last_txn_day,
        c.dormant_fired,
        c.observation_records(),
        [[name, ts, eid, _attr_out(v)] for name, (ts, eid, v) in c.attrs.items()],
        [[_ring_out(days), sums] for days, sums in c.series_days()],
        [[k, v] for k, v in (c.opportunities or {}).items()],
        [[k, v] for k, v in (c.warnings or {}).items()],
        [c.seen.fingerprints.tolist(), c.seen.days.tolist()],
        c.churn_risk,
        c.segments,
    ]


def decode(data: bytes, specs: tuple[SeriesSpec, ...]) -> Customer:
    doc = unpack(data)
    version = doc[0]
    if version not in (1, 2, 3, FORMAT):
        raise ValueError(f"unknown customer state format {version}")
    (
        _,
        first_day,
        day,
        last_instant,
        tier,
        tier_since,
        below_since,
        last_txn_day,
        dormant,
        accounts,
        attrs,
        series,
        opp_last,
        churn_last,
        seen,
    ) = doc[:15]
    c = Customer(first_day, last_instant, layout_of(specs))
    c.day, c.tier, c.tier_since, c.below_since = day, tier, tier_since, below_since
    c.last_txn_day, c.dormant_fired = last_txn_day, dormant
    if version >= 4:
        c.set_observation_records(accounts[0], accounts[1], accounts[2])
    else:
        c.set_accounts({acc: obs for acc, obs in accounts})
    c.set_attrs({name: (ts, eid, _attr_in(v)) for name, ts, eid, v in attrs})
    if len(series) != len(specs):
        raise ValueError(f"customer state has {len(series)} day series, the rules {len(specs)}")
    c.set_series([list(itertools.accumulate(deltas)) for deltas, _ in series], [sums for _, sums in series])
    c.set_cooldowns({k: v for k, v in opp_last}, {k: v for k, v in churn_last})
    c.seen = Seen.of_columns(seen[0], seen[1]) if version >= 4 else Seen(seen)
    c.churn_risk = bool(doc[15]) if len(doc) > 15 else False  # format 1 had no churn_risk
    c.segments = doc[16] if len(doc) > 16 else None  # formats 1 and 2 had no segments
    return c


def state_shape(tier_ids: tuple[str, ...], specs: tuple[SeriesSpec, ...]) -> dict[str, Any]:
    """What stored state means under a rules file: tiers are stored by position and each
    ring's length follows the rules' windows (and lateness). JSON-ready (lists)."""
    return {
        "tiers": list(tier_ids),
        "series": [[s.name, s.carry, list(s.windows), s.size] for s in specs],
    }


def shape_mismatch(stored: dict[str, Any], current: dict[str, Any]) -> str | None:
    """None when state written under `stored` reads right under `current`; else why not."""
    reasons = []
    if stored.get("tiers") != current["tiers"]:
        reasons.append(f"tiers {stored.get('tiers')} -> {current['tiers']}")
    if stored.get("series") != current["series"]:

        def show(series: Any) -> str:
            return ", ".join(f"{name} {size} days" for name, _, _, size in series or [])

        reasons.append(f"day series ({show(stored.get('series'))}) -> ({show(current['series'])})")
    return "; ".join(reasons) or None
