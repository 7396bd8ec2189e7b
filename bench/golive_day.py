"""What go-live day looks like on `tier.changes`: a generated bank cut at day X, then
the rest of the file applied four ways; tier changes on day X+1 and in the 30 days
after, beside the full history's.

    .venv/bin/python -m bench.golive_day [--customers 3000] [--days 60] [--cut 45]
"""

from __future__ import annotations

import argparse
import io
import shutil
import tempfile
from datetime import date, timedelta
from pathlib import Path

from tierstream.contract import TIER_CHANGES
from tierstream.engine.evaluate import Output
from tierstream.engine.partition import PartitionEngine
from tierstream.engine.rules import load_rules
from tierstream.golive.snapshot import write_snapshot
from tierstream.testing.golive import Lines, reference_after_cut, run_lines, split, started
from tierstream.tools.generate import generate_events, write_events
from tierstream.tools.simulate import read_lines


def counts(
    outputs: list[Output], day_one: str, engine: PartitionEngine, reference: PartitionEngine
) -> tuple[int, int, int, int]:
    """Tier changes on day X+1 (and upgrades among them), after the cut-over, and the
    customers whose tier at the end differs from the reference's."""
    changes = [v for topic, _, v in outputs if topic == TIER_CHANGES]
    first = [v for v in changes if v["effective_at"][:10] == day_one]
    wrong = sum(1 for cid, c in reference.customers.items() if engine.customers[cid].tier != c.tier)
    return len(first), sum(1 for v in first if v["direction"] == "upgrade"), len(changes), wrong


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--cut", type=int, default=45)
    args = parser.parse_args()
    rules = load_rules("cmb")
    buf = io.StringIO()
    write_events(generate_events(args.customers, args.days, 42, None, False, True, usd=False), buf)
    lines: Lines = list(read_lines(io.BytesIO(buf.getvalue().encode())))
    x = date(2026, 1, 1) + timedelta(days=args.cut - 1)
    cal = PartitionEngine(rules).calendar
    end = cal.boundary(cal.day_from_text(x.isoformat()) + 1) - 1
    day_one = (x + timedelta(days=1)).isoformat()
    head, rest = split(lines, end)
    _, reference, full = reference_after_cut(rules, head, rest, end)
    tmp = Path(tempfile.mkdtemp())
    try:
        rows = [("the full history (the reference)", counts(full, day_one, reference, reference))]
        for label, minimal in (
            ("warehouse snapshot with tiers", False),
            ("warehouse snapshot without tiers", True),
        ):
            folder = tmp / label.replace(" ", "-")
            write_snapshot(rules, iter(head), end, folder, minimal=minimal)
            engine, out = run_lines(rules, rest, started(rules, folder, x.isoformat()))
            rows.append((label, counts(out, day_one, engine, reference)))
        engine, empty = run_lines(rules, rest)
        rows.append(("empty tables (no snapshot)", counts(empty, day_one, engine, reference)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"CMB, {args.customers:,} customers, {args.days} days, cut at the end of {x} (day {args.cut})")
    after = args.days - args.cut
    print(
        f"| start | tier changes on {day_one} | of which upgrades | tier changes in the {after} days after | customers at another tier than the reference at the end |"
    )
    print("|---|---|---|---|---|")
    for label, (first, up, month, wrong) in rows:
        print(f"| {label} | {first:,} | {up:,} | {month:,} | {wrong:,} |")


if __name__ == "__main__":
    main()
