"""The engine against a plain JSON round trip of the same file, and memory per customer.

    .venv/bin/python -m bench.engine [--customers 10000] [--days 35] [--memory 10000,100000x10]

Side by side in one run, each in a fresh process (issue 13):
- a calibration figure: a fixed pure-Python loop's time, to read the absolutes against;
- `tierstream simulate --rules cmb` file to file, and `json.loads` + `json.dumps` of every
  line of the same file written to a file: the ratio is the target (>= 0.5), since it
  means the same on a slow or fast day of a shared machine;
- the engine in memory (lines already read, outputs rendered to a list), beside it;
- both for the pure-Python engine (the reference) and, when `make compile` built it from
  the current sources, the compiled one (TIERSTREAM_ENGINE_BUILD in each child process;
  each child reports the build it ran, and a mismatch stops the run);
- peak RSS of `simulate` at two bank sizes: RSS per customer at the larger, and the slope
  between them extrapolated to 1,000,000 customers (target <= 1.5 KB per customer), for
  each build too. Both runs keep as many customers decoded as the smaller bank has
  (`--decoded`): the larger one holds the rest packed, so the slope is what a customer past
  the decoded cache costs.

Banks come from `tierstream generate` (the CMB preset with its `segments` section, so the
day boundaries do the segment work too).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.bootstrap import calibration
from tierstream.enginebuild import ENV_VAR, compiled_dir
from tierstream.enginebuild.builder import up_to_date

RATIO_TARGET = 0.5
KB_PER_CUSTOMER_TARGET = 1.5
AT_CUSTOMERS = 1_000_000

# A fresh process running the CLI's entry point, reporting its own peak RSS (VmHWM: the
# parent's ru_maxrss would carry over a fork + exec).
_CLI = """
import json, sys, time
from importlib.metadata import entry_points
main = entry_points(group="console_scripts")["tierstream"].load()
sys.argv = ["tierstream", *{args!r}]
started = time.perf_counter()
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code or 0
seconds = time.perf_counter() - started
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
from tierstream.enginebuild import current
report = {{"code": code, "seconds": seconds, "rss_kb": int(hwm.split()[1]), "build": current().name}}
print(json.dumps(report), file=sys.stderr)
"""

_ROUND_TRIP = """
import json, sys, time
started = time.perf_counter()
n = 0
with open({src!r}, "rb") as src, open({dst!r}, "w", encoding="utf-8") as dst:
    for line in src:
        if line.strip():
            dst.write(json.dumps(json.loads(line), ensure_ascii=False) + "\\n")
            n += 1
seconds = time.perf_counter() - started
print(json.dumps({{"lines": n, "seconds": seconds}}))
"""

_IN_MEMORY = """
import gc, json, time
from tierstream.engine.rules import load_rules
from tierstream.enginebuild import current
from tierstream.tools.simulate import output_line, read_lines, simulate
rules = load_rules("cmb")
with open({src!r}, "rb") as f:
    lines = list(read_lines(f))
sink = []
gc.collect()
started = time.perf_counter()
engine = simulate(rules, lines, lambda o: sink.append(output_line(o)))
seconds = time.perf_counter() - started
print(json.dumps({{"lines": len(lines), "seconds": seconds, "outputs": len(sink), "build": current().name}}))
"""


def make_bank(path: Path, customers: int, days: int, seed: int = 1) -> int:
    """A generated bank, as `tierstream generate` writes it; returns its line count."""
    from tierstream.tools.generate import generate_events, write_events

    with path.open("w", encoding="utf-8") as out:
        return write_events(generate_events(customers, days, seed=seed, usd=False), out)


def builds() -> tuple[list[str], str | None]:
    """The engine builds to measure: pure always, compiled when fresh (else why not)."""
    why = up_to_date(compiled_dir())
    return (["pure", "compiled"], None) if why is None else (["pure"], why)


def _checked(report: dict[str, Any], build: str | None, what: str) -> dict[str, Any]:
    if build is not None and report["build"] != build:
        raise SystemExit(f"{what} ran the {report['build']} engine, not the {build} one")
    return report


def _python(code: str, build: str | None = None) -> dict[str, Any]:
    env = {**os.environ, ENV_VAR: build} if build else None
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    return _checked(json.loads(out.stdout.strip().splitlines()[-1]), build, "the in-memory engine")


def simulate_run(bank: Path, out: Path, build: str | None = None, *extra: str) -> dict[str, Any]:
    """`tierstream simulate --rules cmb` on a file, in a fresh process: seconds, peak RSS,
    the engine build it ran (`build`, or the default one when None)."""
    args = ["simulate", "--rules", "cmb", "--events", str(bank), "--out", str(out), *extra]
    env = {**os.environ, ENV_VAR: build} if build else None
    done = subprocess.run(
        [sys.executable, "-c", _CLI.format(args=args)], check=False, capture_output=True, text=True, env=env
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    if report["code"] != 0:
        raise SystemExit(f"simulate failed: {done.stderr[-2000:]}")
    out.unlink()
    return _checked(report, build, "simulate")


def throughput(bank: Path, lines: int, measured: list[str]) -> dict[str, Any]:
    """Events/s of the JSON round trip, and of simulate (file to file) and the in-memory
    engine for each build."""
    out = bank.with_suffix(".out")
    trip = _python(_ROUND_TRIP.format(src=str(bank), dst=str(out)))
    out.unlink()
    per_build = {}
    for build in measured:
        sim = simulate_run(bank, out, build)
        mem = _python(_IN_MEMORY.format(src=str(bank)), build)
        per_build[build] = {
            "simulate_per_s": lines / sim["seconds"],
            "in_memory_per_s": lines / mem["seconds"],
        }
    return {"lines": lines, "json_round_trip_per_s": lines / trip["seconds"], "builds": per_build}


def memory(work: Path, sizes: tuple[int, int], days: int, measured: list[str]) -> dict[str, Any]:
    """Peak RSS of simulate at two bank sizes, for each build: KB per customer at the
    larger, and the slope between them extrapolated to AT_CUSTOMERS."""
    runs: dict[str, list[dict[str, Any]]] = {build: [] for build in measured}
    for customers in sizes:
        bank = work / f"memory-{customers}.jsonl"
        make_bank(bank, customers, days, seed=2)
        for build in measured:
            runs[build].append(
                simulate_run(bank, bank.with_suffix(".out"), build, "--decoded", str(sizes[0]))
            )
        bank.unlink()
    n_small, n_big = sizes
    per_build = {}
    for build, (small, big) in runs.items():
        slope_kb = (big["rss_kb"] - small["rss_kb"]) / (n_big - n_small)
        per_build[build] = {
            "rss_mb": [small["rss_kb"] / 1024, big["rss_kb"] / 1024],
            "kb_per_customer": big["rss_kb"] / n_big,
            "slope_kb_per_customer": slope_kb,
            "kb_per_customer_at_1m": (big["rss_kb"] + slope_kb * (AT_CUSTOMERS - n_big)) / AT_CUSTOMERS,
        }
    return {"sizes": list(sizes), "days": days, "builds": per_build}


Row = tuple[str, str, str, bool | None]


_LABEL = {"pure": "pure Python", "compiled": "compiled (mypyc)"}


def rows(figures: dict[str, Any]) -> list[Row]:
    """The table rows: each target with its ratio and pass/miss per engine build, absolutes
    as (info)."""
    t, m = figures["throughput"], figures["memory"]
    trip = t["json_round_trip_per_s"]
    table: list[Row] = []
    for build, b in t["builds"].items():
        ratio, in_memory = b["simulate_per_s"] / trip, b["in_memory_per_s"] / trip
        table += [
            (
                f"simulate / JSON round trip, {_LABEL[build]}",
                f">= {RATIO_TARGET}",
                f"{ratio:.2f}",
                ratio >= RATIO_TARGET,
            ),
            ("  simulate events/s", "(info)", f"{b['simulate_per_s']:,.0f}", None),
            ("  engine in memory / JSON round trip", "(info)", f"{in_memory:.2f}", None),
            ("  engine in memory events/s", "(info)", f"{b['in_memory_per_s']:,.0f}", None),
        ]
    if "compiled" in t["builds"]:
        pure, compiled = t["builds"]["pure"], t["builds"]["compiled"]
        table += [
            (
                "compiled / pure, simulate",
                "(info)",
                f"{compiled['simulate_per_s'] / pure['simulate_per_s']:.2f}x",
                None,
            ),
            (
                "compiled / pure, engine in memory",
                "(info)",
                f"{compiled['in_memory_per_s'] / pure['in_memory_per_s']:.2f}x",
                None,
            ),
        ]
    else:
        table.append(("compiled engine: not measured", "(info)", "-", None))
    table.append(("json.loads + json.dumps lines/s, same file", "(info)", f"{trip:,.0f}", None))
    small, big = m["sizes"]
    for build, b in m["builds"].items():
        table += [
            (
                f"simulate RSS KB/customer, {big:,} x {m['days']} days, {build}",
                "(info)",
                f"{b['kb_per_customer']:.2f}",
                None,
            ),
            (
                f"  slope {small:,} -> {big:,} customers (KB/customer)",
                "(info)",
                f"{b['slope_kb_per_customer']:.2f}",
                None,
            ),
            (
                f"  KB/customer at {AT_CUSTOMERS:,} (from the slope, --decoded {small:,})",
                f"<= {KB_PER_CUSTOMER_TARGET}",
                f"{b['kb_per_customer_at_1m']:.2f}",
                b["kb_per_customer_at_1m"] <= KB_PER_CUSTOMER_TARGET,
            ),
        ]
    return table


def measure(customers: int, days: int, memory_sizes: tuple[int, int], memory_days: int) -> dict[str, Any]:
    measured, not_compiled = builds()
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        work = Path(tmp)
        bank = work / "bank.jsonl"
        lines = make_bank(bank, customers, days)
        figures: dict[str, Any] = {
            "calibration_s": calibration(),
            "bank": {"customers": customers, "days": days, "events": lines, "rules": "cmb"},
            "compiled_not_measured": not_compiled,
            "throughput": throughput(bank, lines, measured),
        }
        bank.unlink()
        figures["memory"] = memory(work, memory_sizes, memory_days, measured)
        figures["calibration_after_s"] = calibration()
    return figures


def print_table(figures: dict[str, Any]) -> None:
    bank = figures["bank"]
    print(
        f"\nCMB bank: {bank['customers']:,} customers x {bank['days']} days, {bank['events']:,} events"
        f" (tierstream generate, segments on)"
    )
    print(f"{'figure':<58}{'target':>10}{'measured':>12}  result")
    for name, target, shown, ok in rows(figures):
        verdict = "" if ok is None else ("pass" if ok else "MISS")
        print(f"{name:<58}{target:>10}{shown:>12}  {verdict}")
    if figures["compiled_not_measured"]:
        print(f"compiled engine not measured: {figures['compiled_not_measured']}")
    print(
        f"calibration: a 20-million-step Python loop took {figures['calibration_s']:.2f} s "
        f"(before) / {figures['calibration_after_s']:.2f} s (after)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument(
        "--memory",
        default="10000,100000x10",
        help="two bank sizes and their days for the RSS figures, e.g. 10000,100000x10",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    sizes, _, mem_days = args.memory.partition("x")
    small, big = (int(s) for s in sizes.split(","))
    figures = measure(args.customers, args.days, (small, big), int(mem_days or 10))
    print_table(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
