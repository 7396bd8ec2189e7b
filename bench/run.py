"""`make bench`: the figures a bank asks for, measured here, against their targets.

Prints one table (target, measured, pass/miss) and writes bench/results.json.
Absolute times drift on a shared 2-core machine; comparisons are made side by side
in the same run. Not part of `make test`.

    .venv/bin/python bench/run.py [--customers 10000] [--days 90] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tierstream.engine import codec
from tierstream.engine.rules import load_rules
from tierstream.generate import generate_events, write_events
from tierstream.simulate import output_line, read_lines, simulate

HERE = Path(__file__).parent


def make_bank(path: Path, customers: int, days: int) -> int:
    with path.open("w", encoding="utf-8") as out:
        return write_events(generate_events(customers, days, seed=1, usd=False), out)


def engine_only(rules_name: str, path: Path) -> tuple[float, Any]:
    """Events/s for parse -> apply -> evaluate -> encode, lines already in memory."""
    rules = load_rules(rules_name)
    lines = list(read_lines(path.open("rb")))
    sink: list[str] = []
    gc.collect()
    start = time.perf_counter()
    engine = simulate(rules, lines, lambda o: sink.append(output_line(o)))
    elapsed = time.perf_counter() - start
    return len(lines) / elapsed, engine


def with_files(path: Path) -> float:
    """Events/s of the `tierstream simulate` command, file in, file out."""
    count = sum(1 for _ in path.open("rb"))
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tierstream.cli",
            "simulate",
            "--rules",
            "cmb",
            "--events",
            str(path),
            "--out",
            str(path.with_suffix(".out")),
        ],
        check=True,
        capture_output=True,
    )
    return count / (time.perf_counter() - start)


def state_bytes(engine: Any) -> float:
    specs = engine.ledger.specs
    sizes = [len(codec.encode(c, specs)) for c in engine.customers.values()]
    return sum(sizes) / len(sizes)


def state_run(rules_name: str, customers: int, days: int) -> dict[str, float]:
    """State bytes per customer and this process's RSS after a run (a fresh process each)."""
    code = f"""
import json, resource, sys
from bench.run import state_bytes
from tierstream.engine.rules import load_rules
from tierstream.engine.partition import PartitionEngine
from tierstream.generate import generate_events
from tierstream.simulate import feed_line
import orjson
engine = PartitionEngine(load_rules({rules_name!r}))
n = 0
for i, line in enumerate(generate_events({customers}, {days}, seed=2, usd=False)):
    feed_line(engine, i, orjson.dumps(line))
    n += 1
print(json.dumps({{"events": n, "state_bytes": state_bytes(engine),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=HERE.parent
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["events_per_s"] = result["events"] / (time.perf_counter() - start)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    customers, days = (1000, 30) if args.quick else (args.customers, args.days)
    work = Path(tempfile.mkdtemp(prefix="tierstream-bench-"))
    bank = work / "bank.jsonl"
    events = make_bank(bank, customers, days)
    rows: list[tuple[str, str, float, str, bool | None]] = []
    results: dict[str, Any] = {"machine": f"{resource.getpagesize()}-byte pages, 2 cores", "events": events}

    eps, _ = engine_only("cmb", bank)
    results["engine_events_per_s"] = round(eps)
    rows.append(("engine_events_per_s", ">= 50,000", eps, f"{eps:,.0f}", eps >= 50_000))
    file_eps = with_files(bank)
    results["engine_with_files_events_per_s"] = round(file_eps)
    rows.append(("engine_with_files_events_per_s", "(info)", file_eps, f"{file_eps:,.0f}", None))

    scale = [] if args.quick else [(10_000, 60), (100_000, 60)]
    for preset, limit in (("cmb", 1536), ("ccb", 4096)):
        c, d = (2000, 30) if args.quick else (100_000, 60)
        r = state_run(preset, c, d)
        results[f"state_bytes_per_customer_{preset}"] = round(r["state_bytes"])
        results[f"rss_mb_{preset}"] = round(r["rss_mb"])
        rows.append(
            (
                f"state_bytes_per_customer ({preset})",
                f"<= {limit:,}",
                r["state_bytes"],
                f"{r['state_bytes']:,.0f}",
                r["state_bytes"] <= limit,
            )
        )
        rows.append(
            (f"rss_mb ({preset}, {c:,} customers)", "(info)", r["rss_mb"], f"{r['rss_mb']:,.0f}", None)
        )
    growth = []
    for c, d in scale:
        r = state_run("cmb", c, d)
        growth.append(
            {
                "customers": c,
                "days": d,
                "rss_mb": round(r["rss_mb"]),
                "events_per_s": round(r["events_per_s"]),
            }
        )
    results["growth"] = growth

    print(f"{'figure':<42}{'target':>12}{'measured':>14}  result")
    for name, target, _, shown, ok in rows:
        verdict = "" if ok is None else ("pass" if ok else "MISS")
        print(f"{name:<42}{target:>12}{shown:>14}  {verdict}")
    if growth:
        print("\ncustomers  days   rss_mb  events/s")
        for g in growth:
            print(f"{g['customers']:>9,}  {g['days']:>4}  {g['rss_mb']:>7,}  {g['events_per_s']:>8,}")
    print("\nworker vs pass-through: .venv/bin/python bench/worker_vs_passthrough.py")
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
