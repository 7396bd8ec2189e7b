"""`make bench`: the figures a bank asks for, measured here, against their targets.

Prints one table (target, measured, pass/miss) and writes bench/results.json.
Absolute times drift on a shared 2-core machine; comparisons are made side by side
in the same run. Not part of `make test`. The default run takes about 13 minutes
on the 2-core machine here; `--quick` is a 2-minute smoke run with small sizes.

    .venv/bin/python -m bench.run [--quick] [--skip-worker]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.bootstrap import calibration
from tierstream.engine import codec
from tierstream.engine.rules import load_rules
from tierstream.tools.generate import generate_events, write_events
from tierstream.tools.simulate import output_line, read_lines, simulate

HERE = Path(__file__).parent
Row = tuple[str, str, str, bool | None]


def make_bank(path: Path, customers: int, days: int) -> int:
    with path.open("w", encoding="utf-8") as out:
        return write_events(generate_events(customers, days, seed=1, usd=False), out)


def engine_only(rules_name: str, path: Path) -> tuple[float, float, Any]:
    """Events/s for parse -> apply -> evaluate -> encode, lines already in memory."""
    rules = load_rules(rules_name)
    lines = list(read_lines(path.open("rb")))
    sink: list[str] = []
    gc.collect()
    start = time.perf_counter()
    engine = simulate(rules, lines, lambda o: sink.append(output_line(o)))
    elapsed = time.perf_counter() - start
    return len(lines) / elapsed, elapsed, engine


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


def state_run(rules_name: str, customers: int, days: int) -> dict[str, Any]:
    """State bytes per customer and the process's peak RSS after a run, in a fresh
    process (generation included in the time, so events/s here is end to end)."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.state_run", rules_name, str(customers), str(days)],
        check=True,
        capture_output=True,
        text=True,
        cwd=HERE.parent,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(rules=rules_name, customers=customers, days=days)
    result["events_per_s"] = round(result["events"] / result["seconds"])
    return result


Job = tuple[str, int, int]  # (rules preset, customers, days), or ("files", 0, 0)


def in_pairs(jobs: list[Job], bank: Path) -> list[dict[str, Any]]:
    """Run the jobs two at a time (one per core), longest first; results in job order."""

    def run(job: Job) -> dict[str, Any]:
        if job[0] == "files":
            return {"events_per_s": with_files(bank)}
        return state_run(*job)

    def cost(job: Job) -> int:
        return 10**9 if job[0] == "files" else job[1] * job[2] * (2 if job[0] == "ccb" else 1)

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {job: pool.submit(run, job) for job in sorted(jobs, key=lambda j: -cost(j))}
        return [futures[job].result() for job in jobs]


def slope_kb(a: dict[str, Any], b: dict[str, Any]) -> float:
    """RSS added per customer between two runs, in KB."""
    added_mb = float(b["rss_mb"]) - float(a["rss_mb"])
    return added_mb * 1024 / (int(b["customers"]) - int(a["customers"]))


def baseline(bank: Path, engine: Any, engine_seconds: float, lines: int) -> dict[str, Any]:
    from bench.baseline import engine_figures, nightly_batch, summarize

    batch = nightly_batch(bank, engine.rules)
    ours = engine_figures(engine, batch.as_of)
    return summarize(ours, batch, engine, engine_seconds, lines)


def worker_figures(quick: bool) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Catch-up beside the pass-through, then latency at 2,000/s and at half the worker's
    own measured catch-up rate (the same load relative to this machine, slow or fast)."""
    from bench import latency, worker_vs_passthrough
    from bench.stack import LocalStack

    with LocalStack(prefix="bench.") as stack:
        throughput = worker_vs_passthrough.measure(stack, *((500, 20) if quick else (2000, 20)))
    runs = []
    for rate in (2000, throughput["worker_events_per_s"] // 2):
        args = argparse.Namespace(
            rate=rate, seconds=20 if quick else 40, warmup=5 if quick else 10, customers=20_000
        )
        with LocalStack(prefix="latency.") as stack:
            runs.append(latency.measure(stack, args))
    return throughput, runs[0], runs[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--skip-worker", action="store_true", help="engine figures only (no broker)")
    args = parser.parse_args()
    quick = args.quick
    started = time.perf_counter()
    calibrated = calibration()
    work = Path(tempfile.mkdtemp(prefix="tierstream-bench-"))
    bank = work / "bank.jsonl"
    customers, days = (1000, 30) if quick else (10_000, 90)
    events = make_bank(bank, customers, days)
    rows: list[Row] = []
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
        f"{len(os.sched_getaffinity(0))} cores",
        "bank": {"customers": customers, "days": days, "events": events, "rules": "cmb"},
        "calibration_seconds": round(calibrated, 2),
    }

    # -- engine: events/s alone on one core, then the nightly batch on the same file
    eps, engine_seconds, engine = engine_only("cmb", bank)
    results["engine_events_per_s"] = round(eps)
    rows.append(("engine_events_per_s (1 core, in memory)", "(info)", f"{eps:,.0f}", None))
    base = baseline(bank, engine, engine_seconds, events)
    del engine
    results["baseline"] = base
    agree = base["avg_agree"] == base["tier_agree"] == base["customers"] > 0
    rows.append(
        (
            "batch vs engine: customers agreeing",
            "all",
            f"{min(base['avg_agree'], base['tier_agree']):,}/{base['customers']:,}",
            agree,
        )
    )
    rows.append(("nightly batch (DuckDB), whole history", "(info)", f"{base['batch_seconds']:.1f} s", None))
    rows.append(("engine, whole history", "(info)", f"{engine_seconds:.1f} s", None))

    # -- the rest runs two processes at a time, one per core (longest first): the
    # simulate command with files, state and memory per preset, growth with
    # customers (1 day each, so 1,000,000 fits) and with history
    big = (2000, 30) if quick else (100_000, 60)
    growth_sizes = [1000, 10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    history = (1000, [20, 60]) if quick else (2000, [60, 180])
    jobs: list[Job] = [("files", 0, 0), ("cmb", *big), ("ccb", *big)]
    jobs += [("cmb", c, 1) for c in growth_sizes]
    jobs += [("cmb", history[0], d) for d in history[1]]
    runs = in_pairs(jobs, bank)
    file_eps = runs[0]["events_per_s"]
    results["engine_with_files_events_per_s"] = round(file_eps)
    rows.append(("engine_with_files_events_per_s (simulate)", "(info)", f"{file_eps:,.0f}", None))
    for preset, limit, r in (("cmb", 1536, runs[1]), ("ccb", 4096, runs[2])):
        results[f"state_bytes_per_customer_{preset}"] = round(r["state_bytes"])
        results[f"rss_mb_{preset}"] = round(r["rss_mb"])
        label = f"{preset}, {r['customers']:,} x {r['days']} days"
        rows.append(
            (
                f"state_bytes_per_customer ({label})",
                f"<= {limit:,}",
                f"{r['state_bytes']:,.0f}",
                r["state_bytes"] <= limit,
            )
        )
        rows.append((f"rss_mb ({label})", "(info)", f"{r['rss_mb']:,.0f}", None))
    growth = runs[3:6]
    by_history = runs[6:]
    results["growth"] = [
        {k: g[k] for k in ("customers", "days", "events", "rss_mb", "events_per_s")} for g in growth
    ]
    results["history"] = [
        {k: g[k] for k in ("customers", "days", "events", "rss_mb", "state_bytes")} for g in by_history
    ]
    first, second = slope_kb(growth[0], growth[1]), slope_kb(growth[1], growth[2])
    linear = 0.5 <= second / first <= 1.5 if first > 0 else False
    rows.append(
        (
            "RSS per added customer (KB), 10x then 100x",
            "linear",
            f"{first:.2f} / {second:.2f}",
            linear,
        )
    )
    flat = by_history[1]["rss_mb"] <= by_history[0]["rss_mb"] * 1.15
    rows.append(
        (
            f"RSS {by_history[0]['days']} -> {by_history[1]['days']} days (MB)",
            "flat",
            f"{by_history[0]['rss_mb']:,.0f} -> {by_history[1]['rss_mb']:,.0f}",
            flat,
        )
    )

    # -- the engine's targets as ratios (issue 13): simulate against a JSON round trip of
    # the same file, RSS per customer at two sizes and its slope, with a calibration loop
    from bench import engine as engine_bench

    engine_figures = engine_bench.measure(
        *((1000, 35) if quick else (10_000, 35)),
        (1000, 10_000) if quick else (10_000, 100_000),
        10,
    )
    results["engine_ratios"] = engine_figures
    rows += engine_bench.rows(engine_figures)

    # -- going live: bootstrap from a CCB warehouse snapshot, beside a DuckDB scan of it
    boot_customers = 2_000 if quick else 100_000
    from bench import bootstrap as bootstrap_bench

    boot = bootstrap_bench.measure(boot_customers, 400)
    results["bootstrap"] = boot
    label = f"{boot_customers:,} CCB customers x 400 days, {boot['rows']:,} rows"
    rows.append((f"bootstrap rows/s ({label})", "(info)", f"{boot['rows_per_s']:,.0f}", None))
    rows.append(("bootstrap customers/s", "(info)", f"{boot['customers_per_s']:,.0f}", None))
    rows.append(
        (
            "bootstrap time / DuckDB scan-and-group, same files",
            "<= 4",
            f"{boot['ratio_to_scan']:,.0f} ({boot['seconds']:.1f} s / {boot['scan_s']:.2f} s)",
            boot["ratio_to_scan"] <= 4,
        )
    )
    rows.append(
        ("bootstrap of 10 million customers at this rate (h)", "(info)", f"{boot['hours_for_10m']:.1f}", None)
    )
    rows.append(("bootstrap peak RSS (MB)", "(info)", f"{boot['rss_mb']:,.0f}", None))

    # -- the worker on the local broker
    if not args.skip_worker:
        throughput, lat, half = worker_figures(quick)
        results["worker"] = throughput
        results["latency"] = lat
        results["latency_at_half_capacity"] = half
        results["worker_events_per_s"] = throughput["worker_events_per_s"]
        results["passthrough_events_per_s"] = throughput["passthrough_events_per_s"]
        results["changelog_bytes_per_event"] = throughput["changelog_bytes_per_event"]
        results["latency_p50_ms"] = lat["latency_p50_ms"]
        results["latency_p99_ms"] = lat["latency_p99_ms"]
        ratio = throughput["ratio"]
        rows.append(("worker_events_per_s", "(info)", f"{throughput['worker_events_per_s']:,}", None))
        rows.append(
            ("passthrough_events_per_s", "(info)", f"{throughput['passthrough_events_per_s']:,}", None)
        )
        rows.append(("worker / passthrough", ">= 0.5", f"{ratio:.3f}", ratio >= 0.5))
        rows.append(
            ("changelog_bytes_per_event", "(info)", f"{throughput['changelog_bytes_per_event']:,}", None)
        )
        rows.append(
            ("outputs measured at 2,000/s (consumer)", "(info)", f"{lat['outputs_measured']:,}", None)
        )
        for who, p50, p99 in (
            ("consumer", lat["latency_p50_ms"], lat["latency_p99_ms"]),
            ("worker histogram", lat["worker_latency_p50_ms"], lat["worker_latency_p99_ms"]),
        ):
            rows.append((f"latency_p50_ms at 2,000/s ({who})", "(info)", f"{p50}", None))
            ok = p99 is not None and p99 <= 500
            rows.append((f"latency_p99_ms at 2,000/s ({who})", "<= 500", f"{p99}", ok))
        p99 = half["latency_p99_ms"]
        rows.append(
            (
                # how many outputs the p99 rests on: a live bank's events rarely change a
                # tier, so it can be close to the run's maximum
                f"latency_p99_ms at half catch-up ({half['offered_rate']:,}/s, "
                f"{half['outputs_measured']:,} outputs)",
                "<= 250",
                f"{p99}",
                p99 is not None and p99 <= 250,
            )
        )
        rows.append(
            ("staleness: tierstream (p99) vs nightly batch", "(info)", f"{lat['latency_p99_ms']} ms", None)
        )
    rows.append(("staleness: nightly batch", "(info)", "up to 24 h + run", None))
    if not args.skip_worker:  # worker RSS per customer, memory:// and rocksdb:// (issue 13)
        from bench import worker_memory

        memory = worker_memory.measure((2000, 10_000) if quick else (20_000, 100_000), 2)
        results["worker_memory"] = memory
        rows += worker_memory.rows(memory)

    results["seconds"] = round(time.perf_counter() - started)
    results["rows"] = [{"figure": n, "target": t, "measured": m, "pass": ok} for n, t, m, ok in rows]
    print(f"\n{'figure':<52}{'target':>12}{'measured':>18}  result")
    for name, target, shown, ok in rows:
        verdict = "" if ok is None else ("pass" if ok else "MISS")
        print(f"{name:<52}{target:>12}{shown:>18}  {verdict}")
    print("\ncustomers  days      events   rss_mb  events/s   (growth with customers, CMB)")
    for g in growth:
        print(
            f"{g['customers']:>9,}  {g['days']:>4}  {g['events']:>10,}  {g['rss_mb']:>7,.0f}  {g['events_per_s']:>8,}"
        )
    print("\ncustomers  days      events   rss_mb  state B/customer   (growth with history, CMB)")
    for g in by_history:
        print(
            f"{g['customers']:>9,}  {g['days']:>4}  {g['events']:>10,}  {g['rss_mb']:>7,.0f}  {g['state_bytes']:>16,.0f}"
        )
    print(
        f"\ncalibration: a 20-million-step pure-Python loop took {calibrated:.2f} s at the start, "
        f"{engine_figures['calibration_s']:.2f} s before the engine ratios and "
        f"{engine_figures['calibration_after_s']:.2f} s after them "
        "(the machine is shared: read absolute figures against it; ratios are side by side)"
    )
    print(f"{results['machine']}; {results['seconds']} s in all")
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
