"""`tierstream whatif`: two ladders over the same history, side by side.

Both engines read every line in one pass (the same engine code as production), so the
comparison is exact: a customer moves between the ladders only because of the rules.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .engine.jsonio import NotJson, loads
from .engine.partition import PartitionEngine
from .engine.rules import Rules
from .engine.timeutil import TimestampError, parse_instant
from .simulate import feed_line

SAMPLES = 3


@dataclass
class Snapshot:
    label: str  # a business day, YYYY-MM-DD
    a: dict[str, str]  # customer -> tier under A
    b: dict[str, str]


@dataclass
class WhatIf:
    rules_a: Rules
    rules_b: Rules
    final: Snapshot
    monthly: list[Snapshot] = field(default_factory=list)
    daily: list[tuple[str, Counter[str], Counter[str]]] = field(default_factory=list)

    def matrix(self, snap: Snapshot | None = None) -> dict[str, dict[str, int]]:
        snap = snap or self.final
        m: dict[str, dict[str, int]] = {
            a: dict.fromkeys(self.rules_b.tier_ids, 0) for a in self.rules_a.tier_ids
        }
        for cid, tier_a in snap.a.items():
            m[tier_a][snap.b[cid]] += 1
        return m

    def samples(self) -> dict[tuple[str, str], list[str]]:
        cells: dict[tuple[str, str], list[str]] = defaultdict(list)
        for cid in sorted(self.final.a):
            cell = (self.final.a[cid], self.final.b[cid])
            if len(cells[cell]) < SAMPLES:
                cells[cell].append(cid)
        return dict(cells)

    def movement(self) -> dict[str, dict[str, int]]:
        """Per tier under A: customers ranked higher, lower or the same under B (by ladder position)."""
        rank_b = {t: i / max(1, len(self.rules_b.tiers) - 1) for i, t in enumerate(self.rules_b.tier_ids)}
        rank_a = {t: i / max(1, len(self.rules_a.tiers) - 1) for i, t in enumerate(self.rules_a.tier_ids)}
        out = {t: {"up": 0, "down": 0, "unchanged": 0} for t in self.rules_a.tier_ids}
        for cid, ta in self.final.a.items():
            tb = self.final.b[cid]
            key = "unchanged" if rank_b[tb] == rank_a[ta] else ("up" if rank_b[tb] > rank_a[ta] else "down")
            out[ta][key] += 1
        return out

    def distribution(self) -> dict[str, dict[str, int]]:
        return {"A": dict(Counter(self.final.a.values())), "B": dict(Counter(self.final.b.values()))}


def _tiers(engine: PartitionEngine) -> dict[str, str]:
    ids = engine.rules.tier_ids
    return {cid: ids[c.tier] for cid, c in engine.customers.items()}


def _ts(line: bytes) -> int | None:
    try:
        value = loads(line.decode("utf-8"))["value"]
        return (
            parse_instant(value["ts"])
            if isinstance(value, dict) and isinstance(value.get("ts"), str)
            else None
        )
    except (NotJson, UnicodeDecodeError, KeyError, TypeError, TimestampError):
        return None


def run_whatif(
    rules_a: Rules,
    rules_b: Rules,
    lines: Iterable[tuple[int, bytes]],
    at: int | None = None,
    monthly: bool = False,
) -> WhatIf:
    """Both ladders over the same lines. Snapshots are taken as the clock's day moves
    on (every customer then as of the last day with events), never by moving it."""
    a, b = PartitionEngine(rules_a), PartitionEngine(rules_b)
    cal = a.calendar
    days_a: dict[int, dict[str, str]] = {}
    days_b: dict[int, dict[str, str]] = {}
    a.on_new_day = lambda day: days_a.__setitem__(day, _tiers(a))
    b.on_new_day = lambda day: days_b.__setitem__(day, _tiers(b))
    for number, line in lines:
        if at is not None:
            ts = _ts(line)
            if ts is not None and ts > at:
                continue
        feed_line(a, number, line)
        feed_line(b, number, line)
    if at is not None:
        a.advance_clock(at)
        b.advance_clock(at)
    label = cal.day_text(a.clock_day) if a.clock_day is not None else ""
    final = Snapshot(label, _tiers(a), _tiers(b))
    days = sorted(set(days_a) & set(days_b))
    daily = [(cal.day_text(d), Counter(days_a[d].values()), Counter(days_b[d].values())) for d in days]
    if a.clock_day is not None:
        daily.append((label, Counter(final.a.values()), Counter(final.b.values())))
    monthly_snaps = []
    if monthly:
        for d, nxt in zip(days, [*days[1:], None], strict=True):
            month_ends = (
                nxt is None
                and a.clock_day is not None
                and cal.day_text(a.clock_day)[:7] != cal.day_text(d)[:7]
            )
            if month_ends or (nxt is not None and cal.day_text(nxt)[:7] != cal.day_text(d)[:7]):
                monthly_snaps.append(Snapshot(cal.day_text(d), days_a[d], days_b[d]))
    return WhatIf(rules_a, rules_b, final, monthly_snaps, daily)


def write_csv(result: WhatIf, folder: Any) -> list[str]:
    import csv
    from pathlib import Path

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    snaps = [*result.monthly, result.final]
    with (out / "migration.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["as_of", "tier_a", "tier_b", "customers"])
        for snap in snaps:
            for ta, row in result.matrix(snap).items():
                for tb, n in row.items():
                    w.writerow([snap.label, ta, tb, n])
    written.append(str(out / "migration.csv"))
    with (out / "distribution.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["day", "ladder", "tier", "customers"])
        for day, ca, cb in result.daily:
            for ladder, counts, rules in (("A", ca, result.rules_a), ("B", cb, result.rules_b)):
                for tier in rules.tier_ids:
                    w.writerow([day, ladder, tier, counts.get(tier, 0)])
    written.append(str(out / "distribution.csv"))
    with (out / "customers.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["customer_id", "tier_a", "tier_b"])
        for cid in sorted(result.final.a):
            w.writerow([cid, result.final.a[cid], result.final.b[cid]])
    written.append(str(out / "customers.csv"))
    return written


def plot(result: WhatIf, path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [date.fromisoformat(d) for d, _, _ in result.daily]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    sides = (
        ("A", result.rules_a, [ca for _, ca, _ in result.daily]),
        ("B", result.rules_b, [cb for _, _, cb in result.daily]),
    )
    for ax, (name, rules, counts) in zip(axes, sides, strict=True):
        stacks = [[c.get(t, 0) for c in counts] for t in rules.tier_ids]
        ax.stackplot(days, stacks, labels=[f"{t.id}" for t in rules.tiers])
        ax.set_title(f"{name}: {rules.scheme} {rules.version}")
        ax.set_xlabel("business day")
        ax.legend(loc="upper left", fontsize=8)
        fig.autofmt_xdate()
    axes[0].set_ylabel("customers")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
