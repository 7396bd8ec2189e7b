"""Per-customer state: accounts, day rings with running window sums, counters.

State is bounded: rings hold the longest window in use, accounts keep their
observations inside the lateness horizon plus the one before it (its balance carries
forward), and nothing per event is kept but a 64-bit fingerprint of its id while a
redelivery could still arrive. An in-order event costs O(windows), not O(window).

State is data, held compactly (issue 13; docs/decisions.md): every day ring of a
customer lives in one array of the narrowest integer type that holds its values (it
widens when a value does not fit), the balance observations in one array of packed
records with their event ids in one string, profile attributes as tuples whose names
are shared between customers, and cooldowns only once one is set. The mappings the
rest of the code reads (`accounts`, `attrs`, `series`, `opp_last`, `churn_last`) are
built on demand from these.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable, Iterator, Mapping, MutableSequence, Sequence
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any, Final

from .rules import PEAK_DAYS

#: A run of integers: an array of the narrowest type that holds them, or a list past
#: 64 bits (amounts have no upper bound on the wire).
Ints = MutableSequence[int]

_WIDTHS: Final = (("b", 1 << 7), ("h", 1 << 15), ("i", 1 << 31), ("q", 1 << 63))


def packed(values: Iterable[int]) -> Ints:
    """The values in the narrowest container that holds every one of them."""
    items = list(values)
    low, high = min(items, default=0), max(items, default=0)
    for code, bound in _WIDTHS:
        if -bound <= low and high < bound:
            return array(code, items)
    return items


def widened(values: Ints, value: int) -> Ints:
    """`values` in a container that also holds `value` (after an OverflowError)."""
    return packed([*values, value])[: len(values)] if isinstance(values, array) else values


def fingerprint(event_id: str) -> int:
    """A stable 64-bit fingerprint of an event id (duplicate detection)."""
    return int.from_bytes(blake2b(event_id.encode("utf-8"), digest_size=8).digest(), "big")


@dataclass(frozen=True)
class SeriesSpec:
    """One day series and the window lengths read from it."""

    name: str  # aum | loan | txn_count | debit | credit | spend | external_outflow
    carry: bool  # balances carry forward; transaction sums start each day at 0
    windows: tuple[int, ...]
    size: int  # ring length >= every window


class Layout:
    """Where each series' ring and window sums sit in a customer's `rings` and `sums`."""

    __slots__ = ("ring_at", "ring_length", "specs", "sum_at", "sum_count")

    def __init__(self, specs: tuple[SeriesSpec, ...]) -> None:
        self.specs = specs
        ring_at, sum_at = [], []
        rings = sums = 0
        for spec in specs:
            ring_at.append(rings)
            sum_at.append(sums)
            rings += spec.size
            sums += len(spec.windows)
        self.ring_at = tuple(ring_at)
        self.sum_at = tuple(sum_at)
        self.ring_length = rings
        self.sum_count = sums


_LAYOUTS: dict[tuple[SeriesSpec, ...], Layout] = {}


def layout_of(specs: tuple[SeriesSpec, ...]) -> Layout:
    """The one layout of a series shape (shared by every customer under it)."""
    layout = _LAYOUTS.get(specs)
    if layout is None:
        layout = _LAYOUTS[specs] = Layout(specs)
    return layout


class SeriesView:
    """One series of a customer as plain lists, for reading: `ring[d % size]` is day d's
    value (for the ring's last `size` days), `sums` the running window sums."""

    __slots__ = ("ring", "sums")

    def __init__(self, ring: list[int], sums: list[int]) -> None:
        self.ring = ring
        self.sums = sums


_FP_SIZE: Final = array("Q").itemsize
_BYTE_ORDER: Final = sys.byteorder  # read once: `sys.byteorder` is a module lookup per call


class Seen:
    """Event-id fingerprints inside the redelivery horizon, each with its business day,
    in arrival order: two arrays, 12 bytes an entry, where a dict of int objects took
    ~140 (a customer holds ~2 events a day for the lateness horizon). A lookup scans
    the array in C: a customer holds a few dozen entries at most."""

    __slots__ = ("days", "fingerprints")

    def __init__(self, items: Iterable[Sequence[int]] = ()) -> None:
        self.fingerprints = array("Q")
        self.days = array("i")
        for fp, day in items:
            self.add(fp, day)

    @classmethod
    def of_columns(cls, fingerprints: Sequence[int], days: Sequence[int]) -> Seen:
        """Entries as two columns (the state codec's format 4): one array each, no per-entry call."""
        if len(fingerprints) != len(days):
            raise ValueError(f"{len(fingerprints)} fingerprints for {len(days)} days")
        seen = cls()
        seen.fingerprints = array("Q", fingerprints)
        seen.days = array("i", days)
        return seen

    def __contains__(self, fp: int) -> bool:
        """`fp in self.fingerprints`, found as bytes: the array's own `in` boxes every
        64-bit entry into a Python int to compare it (an allocation per entry)."""
        fps = self.fingerprints
        if not fps:
            return False
        try:
            needle = fp.to_bytes(_FP_SIZE, _BYTE_ORDER)
        except OverflowError:  # no entry can equal a value outside 0 .. 2**64 - 1
            return False
        raw = fps.tobytes()
        at = raw.find(needle)
        while at >= 0:
            if at % _FP_SIZE == 0:  # a whole entry, not bytes across two
                return True
            at = raw.find(needle, at + 1)
        return False

    def __len__(self) -> int:
        return len(self.days)

    def add(self, fp: int, day: int) -> None:
        """A new fingerprint (the caller has checked it is not held)."""
        self.fingerprints.append(fp)
        self.days.append(day)

    def items(self) -> Iterator[tuple[int, int]]:
        return zip(self.fingerprints, self.days, strict=True)

    def forget_before(self, horizon: int) -> None:
        """Drop every entry of a day before `horizon`. Entries arrive roughly in day
        order: the oldest is looked at before scanning."""
        days = self.days
        if days and days[0] < horizon:
            n = len(days)
            cut = 1
            while cut < n and days[cut] < horizon:
                cut += 1
            rest = cut
            while rest < n and days[rest] >= horizon:
                rest += 1
            if rest == n:  # the usual case: the entries to drop are the first ones
                del days[:cut]
                del self.fingerprints[:cut]
                return
            keep = [i for i, d in enumerate(days) if d >= horizon]
            fps = self.fingerprints
            self.fingerprints = array("Q", [fps[i] for i in keep])
            self.days = array("i", [days[i] for i in keep])


# A balance observation is three integers in `Customer.obs`: a key, the instant, the
# balance in fen. Records are sorted by key: by account (the first observed last, as it
# is usually the busiest: its records then sit at the end, where appending and
# replacing are cheapest), then day (one record per account and day). The key carries
# the side too, and stays a small int: -(account index << 23) + ((day + _DAY_BIAS) << 1) + liability.
_ACCOUNT_SHIFT: Final = 23
_ACCOUNTS: Final = 1 << 39
_DAY_BIAS: Final = 1 << 20  # every day of years 1-9999 is in [-_DAY_BIAS, _DAY_BIAS << 1)
_DAY_FIELD: Final = (1 << _ACCOUNT_SHIFT) - 1
#: event ids are printable (SPEC §2), so a newline never occurs in one
_ID_SEPARATOR: Final = "\n"


def _block(account: int) -> int:
    """The lowest key of an account's records."""
    return -(account << _ACCOUNT_SHIFT)


def _key_account(key: int) -> int:
    return -(key >> _ACCOUNT_SHIFT)


def _key_day(key: int) -> int:
    return ((key & _DAY_FIELD) >> 1) - _DAY_BIAS


def _id_span(ids: str, index: int, count: int) -> tuple[int, int]:
    """Where the index-th of `count` newline-joined ids starts and ends in `ids`: found
    from the nearer end (the record an event touches is usually among the last)."""
    if index < count - index:
        start = 0
        for _ in range(index):
            start = ids.index(_ID_SEPARATOR, start) + 1
    else:
        start = len(ids) + 1
        for _ in range(count - index):
            start = ids.rfind(_ID_SEPARATOR, 0, start - 1) + 1
    stop = ids.find(_ID_SEPARATOR, start)
    return start, len(ids) if stop < 0 else stop


#: shared copies of attribute names and short text values (many customers hold the same)
_SHARED: Final[dict[Any, Any]] = {}
_SHARED_LIMIT: Final = 1 << 16


def _shared(value: Any) -> Any:
    """One copy of a tuple of attribute names or of a short text, while the table has room."""
    held = _SHARED.get(value)
    if held is not None:
        return held
    if len(_SHARED) < _SHARED_LIMIT:
        _SHARED[value] = value
    return value


#: every field of a Customer (its __slots__; a mypyc-compiled class has no __slots__ to read)
CUSTOMER_FIELDS = (
    "account_ids",
    "attr_names",
    "attr_stamps",
    "attr_values",
    "below_since",
    "churn_risk",
    "day",
    "dormant_fired",
    "first_day",
    "last_instant",
    "last_txn_day",
    "layout",
    "obs",
    "obs_ids",
    "opportunities",
    "peak",
    "peak_day",
    "rings",
    "seen",
    "segments",
    "sums",
    "tier",
    "tier_since",
    "warnings",
)


class Customer:
    """Everything tierstream keeps about one customer."""

    __slots__ = CUSTOMER_FIELDS

    def __init__(self, first_day: int, first_instant: int, layout: Layout) -> None:
        self.layout = layout
        self.first_day = first_day
        self.day = first_day  # the business day the rings are as of
        self.last_instant = first_instant
        self.tier = 0
        self.tier_since = first_instant
        self.below_since: int | None = None
        #: every series' ring, one after the other (Layout.ring_at); day d of a series
        #: of size n is at ring_at + d % n
        self.rings: Ints = array("b", bytes(layout.ring_length))
        #: every window's running sum, series after series (Layout.sum_at): a list, as
        #: they are read at every evaluation and written at every event
        self.sums = [0] * layout.sum_count
        #: accounts in the order first observed; their observations (one per account
        #: and day, the latest of that day) as [key, ts, fen] records sorted by key, the
        #: event ids of the records joined by newlines
        self.account_ids: tuple[str, ...] = ()
        self.obs: Ints = array("q")
        self.obs_ids = ""
        #: profile attributes: names (a tuple shared between customers), values, and
        #: the (ts, event_id) each value came from
        self.attr_names: tuple[str, ...] = ()
        self.attr_values: tuple[Any, ...] = ()
        self.attr_stamps: tuple[tuple[int, str], ...] = ()
        self.last_txn_day: int | None = None
        self.dormant_fired = False
        #: a balance-drop or outflow warning since the last customer activity
        self.churn_risk = False
        self.opportunities: dict[int, int] | None = None  # target tier -> day of last opportunity
        self.warnings: dict[str, int] | None = None  # reason -> day of last warning
        self.seen = Seen()  # event-id fingerprint -> business day
        self.peak_day: int | None = None  # the day `peak` was computed for
        self.peak = 0
        #: lifecycle, rfm, grid as last published (SPEC §10); None until the first
        #: boundary. An entry is None (none yet) or "" (set at the next boundary quietly).
        self.segments: list[str | None] | None = None

    # ------------------------------------------------------------------ cooldowns
    def note_opportunity(self, target: int, day: int) -> None:
        if self.opportunities is None:
            self.opportunities = {}
        self.opportunities[target] = day

    def note_warning(self, reason: str, day: int) -> None:
        if self.warnings is None:
            self.warnings = {}
        self.warnings[reason] = day

    @property
    def opp_last(self) -> dict[int, int]:
        """Target tier -> business day of the last opportunity (a copy)."""
        return dict(self.opportunities or {})

    @property
    def churn_last(self) -> dict[str, int]:
        """Churn reason -> business day of the last warning (a copy)."""
        return dict(self.warnings or {})

    def set_cooldowns(self, opportunities: Mapping[int, int], warnings: Mapping[str, int]) -> None:
        self.opportunities = dict(opportunities) or None
        self.warnings = dict(warnings) or None

    # ------------------------------------------------------------------ attributes
    def attr(self, name: str) -> Any:
        """The attribute's current value (None if it never had one)."""
        names = self.attr_names
        return self.attr_values[names.index(name)] if name in names else None

    @property
    def attrs(self) -> dict[str, tuple[int, str, Any]]:
        """Attribute -> (ts, event_id, value), in the order first set (a copy)."""
        return {
            name: (stamp[0], stamp[1], value)
            for name, stamp, value in zip(self.attr_names, self.attr_stamps, self.attr_values, strict=True)
        }

    def set_attrs(self, attrs: Mapping[str, tuple[int, str, Any]]) -> None:
        stamps: dict[tuple[int, str], tuple[int, str]] = {}
        self.attr_names = _shared(tuple(attrs))
        self.attr_values = tuple(
            _shared(v) if type(v) is str and len(v) <= 64 else v for _, _, v in attrs.values()
        )
        self.attr_stamps = tuple(stamps.setdefault((ts, eid), (ts, eid)) for ts, eid, _ in attrs.values())

    # ------------------------------------------------------------------ accounts
    @property
    def accounts(self) -> dict[str, list[list[Any]]]:
        """Account id -> observations sorted by day: [day, ts, event_id, fen, liability]
        (a copy)."""
        out: dict[str, list[list[Any]]] = {account: [] for account in self.account_ids}
        obs = self.obs
        ids = self.obs_ids.split(_ID_SEPARATOR) if obs else []
        for r, event_id in enumerate(ids):
            key = obs[3 * r]
            out[self.account_ids[_key_account(key)]].append(
                [_key_day(key), obs[3 * r + 1], event_id, obs[3 * r + 2], bool(key & 1)]
            )
        return out

    def observation_records(self) -> tuple[list[str], list[int], str]:
        """The observations as held (the state codec's format 4): account ids, the
        [key, ts, fen] records one after the other, their event ids newline-joined."""
        obs = self.obs
        return list(self.account_ids), obs.tolist() if isinstance(obs, array) else list(obs), self.obs_ids

    def set_observation_records(self, account_ids: Sequence[str], records: Sequence[int], ids: str) -> None:
        """Observations as `observation_records` gave them, checked: three integers and an
        event id a record, keys in order, each naming one of the accounts."""
        count = len(records) // 3
        if len(records) != 3 * count or (ids.count(_ID_SEPARATOR) + 1 if ids else 0) != count:
            raise ValueError(f"{len(records)} observation integers for the event ids {ids!r}")
        if len(account_ids) >= _ACCOUNTS:
            raise ValueError(f"{len(account_ids):,} accounts for one customer cannot be held")
        keys = records[0::3]
        for at in range(1, len(keys)):
            if keys[at] <= keys[at - 1]:
                raise ValueError("observation keys out of order")
        if keys and not (_key_account(keys[0]) < len(account_ids) and _key_account(keys[-1]) >= 0):
            raise ValueError(f"an observation names an account past the {len(account_ids)} held")
        self.account_ids = tuple(account_ids)
        obs = packed(records) if records else array("q")
        self.obs = array("q", obs) if isinstance(obs, array) and obs.typecode != "q" else obs
        self.obs_ids = ids

    def set_accounts(self, accounts: Mapping[str, Iterable[Sequence[Any]]]) -> None:
        """Observations as `accounts` gives them: [day, ts, event_id, fen, liability]."""
        if len(accounts) >= _ACCOUNTS:
            raise ValueError(f"{len(accounts):,} accounts for one customer cannot be held")
        records: list[int] = []
        ids: list[str] = []
        groups = list(accounts.values())
        for index in range(len(groups) - 1, -1, -1):  # not reversed(enumerate()): mypyc asserts
            for day, ts, event_id, fen, liability in sorted(groups[index], key=lambda o: int(o[0])):
                if not -_DAY_BIAS <= day < _DAY_BIAS << 1 or _ID_SEPARATOR in event_id:
                    raise ValueError(f"observation of day {day} with event id {event_id!r} cannot be held")
                records += [_block(index) + ((day + _DAY_BIAS) << 1) + bool(liability), ts, fen]
                ids.append(event_id)
        self.account_ids = tuple(accounts)
        self.obs = packed(records) if records else array("q")
        if isinstance(self.obs, array) and self.obs.typecode != "q":
            self.obs = array("q", self.obs)
        self.obs_ids = _ID_SEPARATOR.join(ids)

    # ------------------------------------------------------------------ rings
    @property
    def series(self) -> list[SeriesView]:
        """Each series' ring and window sums as lists (a copy, for reading)."""
        layout, rings, sums = self.layout, self.rings, self.sums
        return [
            SeriesView(list(rings[at : at + spec.size]), list(sums[sat : sat + len(spec.windows)]))
            for spec, at, sat in zip(layout.specs, layout.ring_at, layout.sum_at, strict=True)
        ]

    def ring_days(self, index: int) -> list[int]:
        """Series `index` for days [day - size + 1, day], oldest first."""
        layout = self.layout
        size, at = layout.specs[index].size, layout.ring_at[index]
        start = (self.day + 1) % size  # the slot of day - size + 1
        ring = self.rings
        return [*ring[at + start : at + size], *ring[at : at + start]]

    def series_days(self) -> list[tuple[list[int], list[int]]]:
        """Every series' days [day - size + 1, day] (oldest first) and its window sums: what
        the state codec writes. The rings read once as a list (reading each series through
        `ring_days` and its sums through `series`, which copies the rings again, was half
        of a state's encoding, and a commit encodes every customer it changed)."""
        layout, rings, sums = self.layout, self.rings, self.sums
        values = rings.tolist() if isinstance(rings, array) else list(rings)
        first = self.day + 1
        out = []
        for spec, at, sat in zip(layout.specs, layout.ring_at, layout.sum_at, strict=True):
            size = spec.size
            start = at + first % size  # the slot of day - size + 1
            out.append((values[start : at + size] + values[at:start], sums[sat : sat + len(spec.windows)]))
        return out

    def set_series(self, values: Sequence[Sequence[int]], sums: Sequence[Sequence[int]]) -> None:
        """Every series from its values of days [day - size + 1, day] (oldest first) and
        its window sums, in the layout's order."""
        rings: list[int] = []
        for spec, days in zip(self.layout.specs, values, strict=True):
            if len(days) != spec.size:
                raise ValueError(f"{spec.name} holds {len(days)} days where the rules keep {spec.size}")
            cut = spec.size - (self.day + 1) % spec.size  # days[cut] goes to slot 0
            rings += [*days[cut:], *days[:cut]]
        self.rings = packed(rings)
        self.sums = [total for series in sums for total in series]

    def add_to_ring(self, slot: int, delta: int) -> None:
        """rings[slot] += delta, widening the array when the result does not fit."""
        rings = self.rings
        value = rings[slot] + delta
        try:
            rings[slot] = value
        except OverflowError:
            rings = self.rings = widened(rings, value)
            rings[slot] = value


class Ledger:
    """The state operations, configured once from the rules (which series, which windows)."""

    def __init__(self, specs: tuple[SeriesSpec, ...], lateness_days: int) -> None:
        self.specs = specs
        self.layout = layout_of(specs)
        self.index = {s.name: i for i, s in enumerate(specs)}
        self.lateness = lateness_days
        self.aum = self.index["aum"]
        self.loan = self.index.get("loan")
        self.txn_series = [
            (self.index[name], name)
            for name in ("txn_count", "debit", "credit", "spend", "external_outflow")
            if name in self.index
        ]
        #: the per-day series a transaction adds to (None: no rule reads it)
        self.txn_count = self.index.get("txn_count")
        self.debit = self.index.get("debit")
        self.credit = self.index.get("credit")
        self.spend = self.index.get("spend")
        self.outflow = self.index.get("external_outflow")
        #: (ring offset, size, carry, ((sum position, window), ...)) per series
        self.rings = [
            (at, spec.size, spec.carry, tuple((sat + i, n) for i, n in enumerate(spec.windows)))
            for spec, at, sat in zip(specs, self.layout.ring_at, self.layout.sum_at, strict=True)
        ]
        aum_at, aum_size, _, _ = self.rings[self.aum]
        self.peak_ring = (aum_at, aum_size)
        #: `advance` moves a cached peak on by a day when the AUM ring holds the day leaving
        #: the peak's window, before it is overwritten (the rules always keep PEAK_DAYS + 1)
        self.peak_steps = aum_size > PEAK_DAYS

    def new_customer(self, day: int, instant: int) -> Customer:
        return Customer(day, instant, self.layout)

    def sum_position(self, index: int, window: int) -> int:
        """Where series `index`'s running sum of `window` days sits in `Customer.sums`."""
        return self.layout.sum_at[index] + self.specs[index].windows.index(window)

    # ------------------------------------------------------------------ day rings
    def advance(self, c: Customer) -> None:
        """Move the customer's rings from day D to D+1 (balances carry, sums start at 0)."""
        day = c.day
        new = day + 1
        first = c.first_day
        rings, sums = c.rings, c.sums
        if c.peak_day == day and self.peak_steps:
            # The balance-drop peak of day D+1 from day D's, as `peak` would compute it:
            # max over [D+1-PEAK_DAYS, D] is max(peak(D), AUM(D)) unless the day leaving
            # the window held peak(D) (then it is computed again when next read).
            at, size = self.peak_ring
            peak = c.peak
            if rings[at + (day - PEAK_DAYS) % size] < peak:
                today = rings[at + day % size]
                c.peak, c.peak_day = (today if today > peak else peak), new
        for at, size, carry, windows in self.rings:
            value = rings[at + day % size] if carry else 0
            for pos, n in windows:
                leaving = new - n
                # a balance day before first sight was never in the sums (it counts as 0)
                change = value - (rings[at + leaving % size] if leaving >= first or not carry else 0)
                sums[pos] += change
            rings[at + new % size] = value  # a value the ring already holds (or 0)
        c.day = new
        c.seen.forget_before(new - self.lateness)

    def _add_range(self, c: Customer, index: int, start: int, delta: int) -> None:
        """Add delta to a carried series for every day in [start, D]."""
        at, size, _, windows = self.rings[index]
        day = c.day
        if start == day:  # the in-order case: today only (the peak does not read today)
            rings, slot = c.rings, at + day % size
            value = rings[slot] + delta
            try:
                rings[slot] = value
            except OverflowError:
                c.add_to_ring(slot, delta)
            sums = c.sums
            for pos, _ in windows:
                sums[pos] += delta
            return
        for d in range(max(start, day - size + 1), day + 1):
            c.add_to_ring(at + d % size, delta)
        # The ring holds AUM(d) itself (the balance-drop peak reads it); the window sums
        # count days before the customer was first seen as 0 (SPEC §3).
        for pos, n in windows:
            first = max(start, day - n + 1, c.first_day)
            if first <= day:
                c.sums[pos] += delta * (day - first + 1)
        if index == self.aum:
            c.peak_day = None

    def _add_day(self, c: Customer, index: int, at_day: int, delta: int) -> None:
        """Add delta to a per-day series on one day."""
        at, size, _, windows = self.rings[index]
        day = c.day
        if at_day <= day - size:
            return
        rings, slot = c.rings, at + at_day % size
        value = rings[slot] + delta
        try:
            rings[slot] = value
        except OverflowError:
            c.add_to_ring(slot, delta)
        sums = c.sums
        for pos, n in windows:
            if at_day > day - n:
                sums[pos] += delta

    # ------------------------------------------------------------------ events
    def observe(
        self, c: Customer, account_id: str, day: int, ts: int, event_id: str, fen: int, liability: bool
    ) -> None:
        """A balance observation: the account's closing balance changes from `day` on
        until its next later observation."""
        accounts = c.account_ids
        held = len(accounts)
        account = 0  # accounts.index(account_id), without a method call and its exception
        while account < held and accounts[account] != account_id:
            account += 1
        if account == held:
            if account == _ACCOUNTS:
                raise ValueError(f"{_ACCOUNTS:,} accounts for one customer cannot be held")
            c.account_ids = (*accounts, account_id)
        obs = c.obs
        low = -(account << _ACCOUNT_SHIFT)  # the account's keys are in [low, high)
        key = low + ((day + _DAY_BIAS) << 1)
        count = end = len(obs) // 3
        if account:  # the first account's records are the last ones
            high = low + (1 << _ACCOUNT_SHIFT)
            while end > 0 and obs[3 * end - 3] >= high:
                end -= 1
        pos = end
        prev_key = low - 2  # below every key of the account: no record of `day` or before
        while pos > 0:
            prev_key = obs[3 * pos - 3]
            if prev_key <= key + 1:
                break
            pos -= 1
        else:
            prev_key = low - 2
        # record pos - 1 is the account's entry of `day` or the last before it (if its key
        # is >= low); record pos (if < end) the account's next day.
        ids = c.obs_ids
        if prev_key | 1 == key | 1:
            p = 3 * pos - 3
            old_ts = obs[p + 1]
            if old_ts > ts:
                return  # a later observation of the same day already decides it
            if pos == count:  # the last record: its id is the text after the last newline
                start, stop = ids.rfind(_ID_SEPARATOR) + 1, len(ids)
            else:
                start, stop = _id_span(ids, pos - 1, count)
            if old_ts == ts and ids[start:stop] > event_id:
                return
            old_fen, old_liab = obs[p + 2], bool(prev_key & 1)
            if old_liab != liability:
                obs[p] = key | liability
            obs[p + 1] = ts
            try:
                obs[p + 2] = fen
            except OverflowError:
                obs = c.obs = list(obs)
                obs[p + 2] = fen
            c.obs_ids = ids[:start] + event_id + ids[stop:]
        else:
            if prev_key >= low:
                old_fen, old_liab = obs[3 * pos - 1], bool(prev_key & 1)
            else:
                old_fen, old_liab = 0, False
            record = (key | liability, ts, fen)
            if pos == count:  # a new latest day of the first account: appended
                try:
                    obs.extend(record)
                except OverflowError:
                    del obs[3 * count :]
                    obs = c.obs = [*obs, *record]
                ids = f"{ids}{_ID_SEPARATOR}{event_id}" if count else event_id
            else:
                try:
                    obs[3 * pos : 3 * pos] = array("q", record) if isinstance(obs, array) else list(record)
                except OverflowError:
                    obs = c.obs = list(obs)
                    obs[3 * pos : 3 * pos] = record
                start = _id_span(ids, pos, count)[0]
                ids = f"{ids[:start]}{event_id}{_ID_SEPARATOR}{ids[start:]}"
            count += 1
            pos += 1
            end += 1
            # bound the history: the lateness horizon plus the last observation before it
            horizon = low + ((c.day - self.lateness + _DAY_BIAS) << 1)
            # the account's records are [first, end): its records before the new one (pos - 1)
            # are the few just before it (keys are sorted, so this is a bisect for `low`)
            first = pos - 1
            while first > 0 and obs[3 * first - 3] >= low:
                first -= 1
            if end - first > 1 and obs[3 * first + 3] < horizon:
                keep = 1
                while first + keep + 1 < end and obs[3 * (first + keep + 1)] < horizon:
                    keep += 1
                del obs[3 * first : 3 * (first + keep)]
                cut = _id_span(ids, first, count)[0]  # the ids of records [first, first + keep) go too
                stop = cut
                for _ in range(keep):
                    stop = ids.index(_ID_SEPARATOR, stop) + 1
                ids = ids[:cut] + ids[stop:]
                pos -= keep
                end -= keep
            c.obs_ids = ids
        # days [day, last] change, last = the day before the next observation
        last = (((obs[3 * pos] & _DAY_FIELD) >> 1) - _DAY_BIAS - 1) if pos < end else c.day
        if day <= last:
            if old_liab == liability:
                if fen != old_fen:
                    self._add_span(c, self.loan if liability else self.aum, day, last, fen - old_fen)
            else:
                for index, delta in (
                    (self.aum, (0 if liability else fen) - (0 if old_liab else old_fen)),
                    (self.loan, (fen if liability else 0) - (old_fen if old_liab else 0)),
                ):
                    if delta:
                        self._add_span(c, index, day, last, delta)

    def _add_span(self, c: Customer, index: int | None, start: int, end: int, delta: int) -> None:
        if index is None:  # loans are not tracked when no rule reads them
            return
        self._add_range(c, index, start, delta)
        if end < c.day:
            self._add_range(c, index, end + 1, -delta)

    def transaction(self, c: Customer, day: int, fen: int, debit: bool, channel: str, external: bool) -> None:
        if channel != "system":  # customer-initiated
            if self.txn_count is not None:
                self._add_day(c, self.txn_count, day, 1)
            side = self.debit if debit else self.credit
            if side is not None:
                self._add_day(c, side, day, fen)
            last = c.last_txn_day
            if last is None or day > last:
                c.last_txn_day = day
                # A spell (dormant, churn risk) is that of a last-activity day: first sight
                # until the first transaction. A late first transaction dated on the day of
                # first sight leaves it as it is (READING 10 and 24 of the reference).
                if day != (c.first_day if last is None else last):
                    c.dormant_fired = False  # a new dormant spell can only start from here
                    c.churn_risk = False
        if debit and channel == "pos" and self.spend is not None:
            self._add_day(c, self.spend, day, fen)
        if debit and external and self.outflow is not None:
            self._add_day(c, self.outflow, day, fen)

    @staticmethod
    def profile(c: Customer, ts: int, event_id: str, attributes: dict[str, Any]) -> None:
        stamp = (ts, event_id)  # one tuple for every attribute this event sets
        names, values, stamps = list(c.attr_names), list(c.attr_values), list(c.attr_stamps)
        changed = False
        for name, value in attributes.items():
            if type(value) is str and len(value) <= 64:
                value = _shared(value)
            if name in names:
                i = names.index(name)
                if stamps[i] < stamp:
                    values[i], stamps[i] = value, stamp
                    changed = True
            else:
                names.append(name)
                values.append(value)
                stamps.append(stamp)
                changed = True
        if changed:
            c.attr_names = _shared(tuple(names))
            c.attr_values = tuple(values)
            c.attr_stamps = tuple(stamps)

    # ------------------------------------------------------------------ reads
    def current(self, c: Customer, index: int) -> int:
        at, size, _, _ = self.rings[index]
        return c.rings[at + c.day % size]

    def window_sum(self, c: Customer, index: int, window_pos: int) -> int:
        return c.sums[self.layout.sum_at[index] + window_pos]

    def peak(self, c: Customer, days: int = PEAK_DAYS) -> int:
        """max AUM(d) for d in [D-days, D-1] (a late observation may date before first sight).
        Cached per day, and only ever asked for PEAK_DAYS (`advance` steps the cache on)."""
        if days != PEAK_DAYS:
            raise ValueError(f"the peak is kept for {PEAK_DAYS} days, not {days}")
        if c.peak_day == c.day:
            return c.peak
        at, size, _, _ = self.rings[self.aum]
        ring = c.rings
        start = (c.day - days) % size
        stop = start + days
        if stop <= size:
            best = max(ring[at + start : at + stop])
        else:
            best = max(max(ring[at + start : at + size]), max(ring[at : at + stop - size]))
        c.peak_day, c.peak = c.day, best
        return best
