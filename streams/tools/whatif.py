"""`tierstream whatif`: two ladders over the same history, side by side.

Both engines read every line in one pass (the same engine code as production), so the
comparison is exact: a customer moves between the ladders only because of the rules.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from itertools import product
from typing import Any

from ..engine.ledger import Customer
from ..engine.money import format_fen
from ..engine.partition import PartitionEngine
from ..engine.rules import LIFECYCLE_STAGES, Rules
from ..safeio import atomic_path
from .simulate import feed_line, happens_after

SAMPLES = 3
#: a customer's segment before its first boundary, in the segment matrices
NONE = "∅"


def _order(rules: Rules, segment: str) -> Any:
    """A sort key for one segment's values: none first, then the rules' own order (the
    lifecycle stages, the grid's names), else by text."""
    if segment == "lifecycle":
        rank = {v: i for i, v in enumerate(LIFECYCLE_STAGES)}
    elif segment == "grid":
        value, activity = rules.serving_grid()
        rank = {f"{v}/{a}": i for i, (v, a) in enumerate(product(value.names, activity.names))}
    else:
        rank = {}
    return lambda v: (v != NONE, rank.get(v, len(rank)), v)


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
    #: customer -> metric values (both ladders' metrics) and each ladder's gap to its next tier
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: customer -> segment -> value served at the end, under A and under B
    segments_a: dict[str, dict[str, str]] = field(default_factory=dict)
    segments_b: dict[str, dict[str, str]] = field(default_factory=dict)

    def segment_names(self) -> list[str]:
        """The segments both sides serve (lifecycle and grid always; rfm when both publish it)."""
        a = {name for seg in self.segments_a.values() for name in seg}
        b = {name for seg in self.segments_b.values() for name in seg}
        return [name for name in ("lifecycle", "rfm", "grid") if name in a and name in b]

    def segment_matrix(self, name: str) -> dict[str, dict[str, int]]:
        """Customers by their `name` segment under A (rows) and under B (columns); a customer
        with no value yet on a side counts under "∅"."""
        cells = Counter(
            (seg.get(name, NONE), self.segments_b.get(cid, {}).get(name, NONE))
            for cid, seg in self.segments_a.items()
        )
        rows = sorted({a for a, _ in cells}, key=_order(self.rules_a, name))
        cols = sorted({b for _, b in cells}, key=_order(self.rules_b, name))
        return {a: {b: cells.get((a, b), 0) for b in cols} for a in rows}

    def matrix(self, snap: Snapshot | None = None) -> dict[str, dict[str, int]]:
        snap = snap or self.final
        m: dict[str, dict[str, int]] = {
            a: dict.fromkeys(self.rules_b.tier_ids, 0) for a in self.rules_a.tier_ids
        }
        for cid, tier_a in snap.a.items():
            m[tier_a][snap.b[cid]] += 1
        return m

    def cell_counts(self) -> Counter[tuple[str, str]]:
        return Counter((self.final.a[cid], self.final.b[cid]) for cid in self.final.a)

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
        if happens_after(line, at):
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
    served_a = {cid: a.evaluator.serving_segments(c) for cid, c in a.customers.items()}
    served_b = {cid: b.evaluator.serving_segments(c) for cid, c in b.customers.items()}
    return WhatIf(rules_a, rules_b, final, monthly_snaps, daily, _figures(a, b), served_a, served_b)


def _next_gap(engine: PartitionEngine, c: Customer) -> tuple[str, str]:
    """(next tier, gap to it on its opportunity metric) under this engine's ladder, or ("", "")."""
    ev, tiers = engine.evaluator, engine.rules.tier_ids
    if c.tier + 1 >= len(tiers) or ev.opportunity[c.tier + 1] is None:
        return "", ""
    cond, _ = ev.opportunity[c.tier + 1]  # type: ignore[misc]
    value = ev.getters[cond.metric.name](c)
    return tiers[c.tier + 1], format_fen(max(0, cond.literal - (value or 0)))


def _figures(a: PartitionEngine, b: PartitionEngine) -> dict[str, dict[str, Any]]:
    """customers.csv's columns beyond the tiers: every metric either ladder names (as
    the output events write them), and each ladder's next tier and gap."""
    names_a = [m.name for m in a.rules.output_metrics()]
    names_b = [m.name for m in b.rules.output_metrics() if m.name not in names_a]
    out: dict[str, dict[str, Any]] = {}
    for cid, ca in a.customers.items():
        cb = b.customers.get(cid)
        row = a.evaluator.render_metrics(ca, names_a)
        row.update(b.evaluator.render_metrics(cb, names_b) if cb else dict.fromkeys(names_b))
        row["next_tier_a"], row["gap_a"] = _next_gap(a, ca)
        row["next_tier_b"], row["gap_b"] = _next_gap(b, cb) if cb else ("", "")
        out[cid] = row
    return out


def write_csv(result: WhatIf, folder: Any) -> list[str]:
    """migration.csv, distribution.csv, customers.csv in `folder`, each written whole or not at all."""
    import csv
    from pathlib import Path

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    snaps = [*result.monthly, result.final]
    with atomic_path(out / "migration.csv") as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["as_of", "tier_a", "tier_b", "customers"])
        for snap in snaps:
            for ta, row in result.matrix(snap).items():
                for tb, n in row.items():
                    w.writerow([snap.label, ta, tb, n])
    written.append(str(out / "migration.csv"))
    with atomic_path(out / "distribution.csv") as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["day", "ladder", "tier", "customers"])
        for day, ca, cb in result.daily:
            for ladder, counts, rules in (("A", ca, result.rules_a), ("B", cb, result.rules_b)):
                for tier in rules.tier_ids:
                    w.writerow([day, ladder, tier, counts.get(tier, 0)])
    written.append(str(out / "distribution.csv"))
    with atomic_path(out / "customers.csv") as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        extra = list(next(iter(result.figures.values()), {}))
        w.writerow(["customer_id", "tier_a", "tier_b", *extra])
        for cid in sorted(result.final.a):
            figures = result.figures.get(cid, {})
            w.writerow([cid, result.final.a[cid], result.final.b[cid], *(figures.get(k) for k in extra)])
    written.append(str(out / "customers.csv"))
    with atomic_path(out / "segments.csv") as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["segment", "value_a", "value_b", "customers"])
        for name in result.segment_names():
            for va, row in result.segment_matrix(name).items():
                for vb, n in row.items():
                    w.writerow([name, va, vb, n])
    written.append(str(out / "segments.csv"))
    return written


#: File types `--plot` can write (matplotlib's Agg backend).
PLOT_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".eps", ".ps")


def plot(result: WhatIf, path: Any) -> None:
    """The tier distribution over time under A and under B, and B − A per tier: two
    near-identical stacks hide a move of a few customers, the difference shows it."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target = Path(path)
    days = [date.fromisoformat(d) for d, _, _ in result.daily]
    fig, axes = plt.subplots(1, 3, figsize=(15, 5))
    sides = (
        ("A", result.rules_a, [ca for _, ca, _ in result.daily]),
        ("B", result.rules_b, [cb for _, _, cb in result.daily]),
    )
    for ax, (name, rules, counts) in zip(axes[:2], sides, strict=True):
        stacks = [[c.get(t, 0) for c in counts] for t in rules.tier_ids]
        ax.stackplot(days, stacks, labels=list(rules.tier_ids))
        ax.set_title(f"{name}: {rules.scheme} {rules.version}")
        ax.set_ylabel("customers")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, fontsize=8, frameon=False)
    diff = axes[2]
    tiers = list(dict.fromkeys([*result.rules_a.tier_ids, *result.rules_b.tier_ids]))
    for tier in tiers:
        delta = [cb.get(tier, 0) - ca.get(tier, 0) for _, ca, cb in result.daily]
        if any(delta):
            diff.plot(days, delta, label=tier)
    diff.axhline(0, color="grey", linewidth=0.8)
    diff.set_title("B − A: customers per tier")
    diff.set_ylabel("customers (B minus A)")
    if diff.get_legend_handles_labels()[0]:
        diff.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, fontsize=8, frameon=False)
    else:
        diff.text(0.5, 0.5, "no difference", ha="center", va="center", transform=diff.transAxes)
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=110, format=target.suffix.lstrip(".").lower() or "png")
    plt.close(fig)
