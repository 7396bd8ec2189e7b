"""Per-customer state: accounts, day rings with running window sums, counters.

State is bounded: rings hold the longest window in use, accounts keep their
observations inside the lateness horizon plus the one before it (its balance carries
forward), and nothing per event is kept but a 64-bit fingerprint of its id while a
redelivery could still arrive. An in-order event costs O(windows), not O(window).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any


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


class Series:
    """A fixed-size ring of per-day values and one running sum per window."""

    __slots__ = ("ring", "sums")

    def __init__(self, spec: SeriesSpec) -> None:
        self.ring = array("q", bytes(8 * spec.size))
        self.sums = [0] * len(spec.windows)


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

    def __contains__(self, fp: int) -> bool:
        return fp in self.fingerprints

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
            keep = [i for i, d in enumerate(days) if d >= horizon]
            fps = self.fingerprints
            self.fingerprints = array("Q", [fps[i] for i in keep])
            self.days = array("i", [days[i] for i in keep])


class Customer:
    """Everything tierstream keeps about one customer."""

    __slots__ = (
        "accounts",
        "attrs",
        "below_since",
        "churn_last",
        "churn_risk",
        "day",
        "dormant_fired",
        "first_day",
        "last_instant",
        "last_txn_day",
        "opp_last",
        "peak_cache",
        "seen",
        "segments",
        "series",
        "tier",
        "tier_since",
    )

    def __init__(self, first_day: int, first_instant: int, specs: tuple[SeriesSpec, ...]) -> None:
        self.first_day = first_day
        self.day = first_day  # the business day the rings are as of
        self.last_instant = first_instant
        self.tier = 0
        self.tier_since = first_instant
        self.below_since: int | None = None
        #: account id -> observations, one per business day (the latest of that day),
        #: sorted by day: [day, ts, event_id, fen, liability]
        self.accounts: dict[str, list[list[Any]]] = {}
        #: attribute -> (ts, event_id, value)
        self.attrs: dict[str, tuple[int, str, Any]] = {}
        self.series = [Series(s) for s in specs]
        self.last_txn_day: int | None = None
        self.dormant_fired = False
        #: a balance-drop or outflow warning since the last customer activity
        self.churn_risk = False
        self.opp_last: dict[int, int] = {}  # target tier -> day of last opportunity
        self.churn_last: dict[str, int] = {}  # reason -> day of last warning
        self.seen = Seen()  # event-id fingerprint -> business day
        self.peak_cache: tuple[int, int] | None = None  # (day, peak)
        #: lifecycle, rfm, grid as last published (SPEC §10); None until the first
        #: boundary. An entry is None (none yet) or "" (set at the next boundary quietly).
        self.segments: list[str | None] | None = None


class Ledger:
    """The state operations, configured once from the rules (which series, which windows)."""

    def __init__(self, specs: tuple[SeriesSpec, ...], lateness_days: int) -> None:
        self.specs = specs
        self.index = {s.name: i for i, s in enumerate(specs)}
        self.lateness = lateness_days
        self.aum = self.index["aum"]
        self.loan = self.index.get("loan")
        self.txn_series = [
            (self.index[name], name)
            for name in ("txn_count", "debit", "credit", "spend", "external_outflow")
            if name in self.index
        ]

    def new_customer(self, day: int, instant: int) -> Customer:
        return Customer(day, instant, self.specs)

    # ------------------------------------------------------------------ day rings
    def advance(self, c: Customer) -> None:
        """Move the customer's rings from day D to D+1 (balances carry, sums start at 0)."""
        new = c.day + 1
        first = c.first_day
        for spec, ser in zip(self.specs, c.series, strict=True):
            ring, size = ser.ring, spec.size
            head = ring[c.day % size]
            value = head if spec.carry else 0
            sums = ser.sums
            for i, n in enumerate(spec.windows):
                leaving = new - n
                # a balance day before first sight was never in the sums (it counts as 0)
                sums[i] += value - (ring[leaving % size] if leaving >= first or not spec.carry else 0)
            ring[new % size] = value
        c.day = new
        c.seen.forget_before(new - self.lateness)

    def _add_range(self, c: Customer, index: int, start: int, delta: int) -> None:
        """Add delta to a carried series for every day in [start, D]."""
        spec = self.specs[index]
        ser = c.series[index]
        ring, size, day = ser.ring, spec.size, c.day
        sums = ser.sums
        if start == day:  # the in-order case: today only
            ring[day % size] += delta
            for i in range(len(sums)):
                sums[i] += delta
            return
        for d in range(max(start, day - size + 1), day + 1):
            ring[d % size] += delta
        # The ring holds AUM(d) itself (the balance-drop peak reads it); the window sums
        # count days before the customer was first seen as 0 (SPEC §3).
        for i, n in enumerate(spec.windows):
            first = max(start, day - n + 1, c.first_day)
            if first <= day:
                sums[i] += delta * (day - first + 1)
        if index == self.aum:
            c.peak_cache = None

    def _add_day(self, c: Customer, index: int, at: int, delta: int) -> None:
        """Add delta to a per-day series on one day."""
        spec = self.specs[index]
        ser = c.series[index]
        day = c.day
        if at <= day - spec.size:
            return
        ser.ring[at % spec.size] += delta
        sums = ser.sums
        for i, n in enumerate(spec.windows):
            if at > day - n:
                sums[i] += delta

    # ------------------------------------------------------------------ events
    def observe(
        self, c: Customer, account_id: str, day: int, ts: int, event_id: str, fen: int, liability: bool
    ) -> None:
        """A balance observation: the account's closing balance changes from `day` on
        until its next later observation."""
        obs = c.accounts.get(account_id)
        if obs is None:
            obs = c.accounts[account_id] = []
        pos = len(obs)
        while pos > 0 and obs[pos - 1][0] > day:
            pos -= 1
        # obs[pos-1] is the entry of `day` or the last before it; obs[pos] the next day.
        prev = obs[pos - 1] if pos > 0 else None
        if prev is not None and prev[0] == day:
            if prev[1] > ts or (prev[1] == ts and prev[2] > event_id):
                return  # a later observation of the same day already decides it
            old_fen, old_liab = prev[3], prev[4]
            prev[1], prev[2], prev[3], prev[4] = ts, event_id, fen, liability
        else:
            old_fen, old_liab = (prev[3], prev[4]) if prev is not None else (0, False)
            obs.insert(pos, [day, ts, event_id, fen, liability])
            pos += 1
            # bound the history: the lateness horizon plus the last observation before it
            horizon = c.day - self.lateness
            if len(obs) > 1 and obs[1][0] < horizon:
                keep = 1
                while keep + 1 < len(obs) and obs[keep + 1][0] < horizon:
                    keep += 1
                del obs[:keep]
                pos -= keep
        # days [day, end] change, end = the day before the next observation
        end = obs[pos][0] - 1 if pos < len(obs) else c.day
        start = day
        if start <= end:
            if old_liab == liability:
                if fen != old_fen:
                    self._add_span(c, self.loan if liability else self.aum, start, end, fen - old_fen)
            else:
                for index, delta in (
                    (self.aum, (0 if liability else fen) - (0 if old_liab else old_fen)),
                    (self.loan, (fen if liability else 0) - (old_fen if old_liab else 0)),
                ):
                    if delta:
                        self._add_span(c, index, start, end, delta)

    def _add_span(self, c: Customer, index: int | None, start: int, end: int, delta: int) -> None:
        if index is None:  # loans are not tracked when no rule reads them
            return
        self._add_range(c, index, start, delta)
        if end < c.day:
            self._add_range(c, index, end + 1, -delta)

    def transaction(self, c: Customer, day: int, fen: int, debit: bool, channel: str, external: bool) -> None:
        customer_initiated = channel != "system"
        idx = self.index
        if customer_initiated:
            if "txn_count" in idx:
                self._add_day(c, idx["txn_count"], day, 1)
            if debit and "debit" in idx:
                self._add_day(c, idx["debit"], day, fen)
            if not debit and "credit" in idx:
                self._add_day(c, idx["credit"], day, fen)
            if c.last_txn_day is None or day > c.last_txn_day:
                c.last_txn_day = day
                c.dormant_fired = False  # a new dormant spell can only start from here
                c.churn_risk = False
        if debit and channel == "pos" and "spend" in idx:
            self._add_day(c, idx["spend"], day, fen)
        if debit and external and "external_outflow" in idx:
            self._add_day(c, idx["external_outflow"], day, fen)

    @staticmethod
    def profile(c: Customer, ts: int, event_id: str, attributes: dict[str, Any]) -> None:
        for name, value in attributes.items():
            cur = c.attrs.get(name)
            if cur is None or (cur[0], cur[1]) < (ts, event_id):
                c.attrs[name] = (ts, event_id, value)

    # ------------------------------------------------------------------ reads
    def current(self, c: Customer, index: int) -> int:
        spec = self.specs[index]
        return c.series[index].ring[c.day % spec.size]

    def window_sum(self, c: Customer, index: int, window_pos: int) -> int:
        return c.series[index].sums[window_pos]

    def peak(self, c: Customer, days: int) -> int:
        """max AUM(d) for d in [D-days, D-1] (a late observation may date before first sight)."""
        cache = c.peak_cache
        if cache is not None and cache[0] == c.day:
            return cache[1]
        size = self.specs[self.aum].size
        ring = c.series[self.aum].ring
        start = (c.day - days) % size
        stop = start + days
        if stop <= size:
            best = max(ring[start:stop])
        else:
            best = max(max(ring[start:]), max(ring[: stop - size]))
        c.peak_cache = (c.day, best)
        return best
