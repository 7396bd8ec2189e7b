"""A customer's state in a form that does not depend on the rules (SPEC §9).

The engine's `Customer` is shaped by the rules: tiers are stored by position, and a
day ring holds as many days as the rules' longest window of that series, with one
running sum per window. A `CustomerRecord` names tiers by id and keeps each series as
plain per-day values ending on the customer's day, with no sums. It is what a state
export holds, what a warehouse snapshot is turned into, and what `seed` builds an
engine customer from under any rules whose windows and lateness it covers.

The window sums are derived, never stored: for a balance series (carried forward)
the sum of AUM(d) over the window's days on or after first sight; for a per-day series
the sum over the window's days. `Ledger` keeps exactly these sums (tests check it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .ledger import Customer, Ledger, Seen
from .rules import SEGMENT_NAMES

#: The event id a snapshot row stands as: above every printable id, so "at an equal
#: instant the snapshot's row stands" (SPEC §9) falls out of the (ts, event_id) order.
SNAPSHOT_EVENT_ID = "\U0010ffff"

#: Every day series a record may carry, in the ledger's order.
SERIES = ("aum", "loan", "txn_count", "debit", "credit", "spend", "external_outflow")
CARRIED = frozenset({"aum", "loan"})


class MissingHistory(ValueError):
    """The record does not hold the history the rules read."""


@dataclass
class CustomerRecord:
    customer_id: str
    first_day: int
    day: int  # the business day the series end on
    last_instant: int
    tier: str | None  # None: not given (a warehouse snapshot without tiers)
    tier_since: int
    below_since: int | None = None
    last_txn_day: int | None = None
    dormant_fired: bool = False
    churn_risk: bool = False
    #: account id -> observations sorted by day: [day, ts, event_id, fen, liability]
    accounts: dict[str, list[list[Any]]] = field(default_factory=dict)
    #: attribute -> (ts, event_id, value)
    attrs: dict[str, tuple[int, str, Any]] = field(default_factory=dict)
    #: series name -> values of days [day - len + 1, day], oldest first
    series: dict[str, list[int]] = field(default_factory=dict)
    #: target tier id -> business day of the last opportunity
    opportunities: dict[str, int] = field(default_factory=dict)
    #: churn reason -> business day of the last warning
    warnings: dict[str, int] = field(default_factory=dict)
    #: event-id fingerprint -> business day (duplicate detection within lateness)
    seen: dict[int, int] = field(default_factory=dict)
    #: segment -> value as last published (SPEC §10); absent: none yet; "": not given
    #: (a warehouse snapshot), set at the next boundary without an output
    segments: dict[str, str] = field(default_factory=dict)


def to_record(customer_id: str, c: Customer, ledger: Ledger, tier_ids: tuple[str, ...]) -> CustomerRecord:
    """Everything the engine keeps about a customer, rules-free (lossless)."""
    series = {spec.name: c.ring_days(i) for i, spec in enumerate(ledger.specs)}
    return CustomerRecord(
        customer_id=customer_id,
        first_day=c.first_day,
        day=c.day,
        last_instant=c.last_instant,
        tier=tier_ids[c.tier],
        tier_since=c.tier_since,
        below_since=c.below_since,
        last_txn_day=c.last_txn_day,
        dormant_fired=c.dormant_fired,
        churn_risk=c.churn_risk,
        accounts=c.accounts,
        attrs=c.attrs,
        series=series,
        opportunities={tier_ids[t]: day for t, day in c.opp_last.items()},
        warnings=dict(c.churn_last),
        seen=dict(c.seen.items()),
        segments={n: v for n, v in zip(SEGMENT_NAMES, c.segments or (), strict=False) if v is not None},
    )


def seed(record: CustomerRecord, ledger: Ledger, tier_ids: tuple[str, ...]) -> Customer:
    """The engine customer a record stands for under a ledger's rings and windows.

    Raises MissingHistory when the rules read a series the record does not hold, or
    more days of one than it holds. A tier or opportunity target the rules do not have
    (a ladder change) is left to the caller: see `PartitionEngine.seed`.
    """
    index = {t: i for i, t in enumerate(tier_ids)}
    c = Customer(record.first_day, record.last_instant, ledger.layout)
    c.day = record.day
    # a tier the ladder no longer has: the engine adopts the qualified tier (no output)
    c.tier = index.get(record.tier, 0) if record.tier is not None else 0
    c.tier_since = record.tier_since
    c.below_since = record.below_since
    c.last_txn_day = record.last_txn_day
    c.dormant_fired = record.dormant_fired
    c.churn_risk = record.churn_risk
    c.set_accounts(record.accounts)
    c.set_attrs(record.attrs)
    tails, sums = [], []
    for spec in ledger.specs:
        values = record.series.get(spec.name)
        if values is None:
            raise MissingHistory(f"the rules read {spec.name} by day, which the state does not keep")
        if len(values) < spec.size:
            raise MissingHistory(
                f"the rules need {spec.size} days of {spec.name}; the state keeps {len(values)}"
            )
        tail = values[len(values) - spec.size :]
        tails.append(tail)
        sums.append([window_sum(tail, n, record.day, record.first_day, spec.carry) for n in spec.windows])
    c.set_series(tails, sums)
    c.set_cooldowns(
        {index[t]: d for t, d in record.opportunities.items() if t in index}, dict(record.warnings)
    )
    c.seen = Seen(record.seen.items())
    if record.segments:
        c.segments = [record.segments.get(name) for name in SEGMENT_NAMES]
    return c


def window_sum(values: list[int], window: int, day: int, first_day: int, carry: bool) -> int:
    """The ledger's running sum of a window ending on `day`, from per-day values ending
    on `day`: a balance day before first sight counts as 0 (SPEC §3)."""
    start = day - window + 1
    if carry:
        start = max(start, first_day)
    count = day - start + 1
    if count <= 0:
        return 0
    return sum(values[len(values) - count :])
