"""Worker memory per customer: RSS of a real `tierstream run` over two bank sizes.

    .venv/bin/python -m bench.worker_memory [--sizes 20000 100000] [--days 2]

For each size a generated bank is replayed once into the local broker; then a worker
with `TIERSTREAM_STORE=memory://` and one with `rocksdb://` (each its own app id, so
its own group, table and changelog) read it from the beginning. Once a worker has
consumed every record and its last commit is written, its peak RSS (VmHWM) and
settled RSS (VmRSS) are read from /proc; the RocksDB worker is then stopped and its
data directory's bytes counted (memtables flushed at close).

Extrapolation: both runs keep as many customers decoded as the smaller bank has
(`TIERSTREAM_DECODED_CUSTOMERS`, the worker's bounded cache), so the larger run's
extra customers are those past the cache and the slope between the two sizes is
what one more customer costs. RSS at 1,000,000 = RSS at the larger size + slope x
(1,000,000 - larger size); per customer is that over 1,000,000. Two days, so the
day-boundary sweep (every customer caught up, the first segments published) is in
the peak.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.bootstrap import calibration
from bench.stack import LocalStack, WorkerProcess
from tierstream.tools.generate import generate_events, write_events
from tierstream.tools.kafkaio import replay
from tierstream.tools.simulate import read_lines

AT_CUSTOMERS = 1_000_000
TARGET_KB = 1.5
STORES = ("memory://", "rocksdb://")
Row = tuple[str, str, str, bool | None]


def rss_kb(pid: int) -> tuple[int, int]:
    """(peak, current) resident set of a process, in KB, from /proc/<pid>/status."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value
    return int(fields["VmHWM"].split()[0]), int(fields["VmRSS"].split()[0])


def extrapolate(small: tuple[int, float], big: tuple[int, float], at: int = AT_CUSTOMERS) -> dict[str, float]:
    """From (customers, KB) at two sizes: the KB a customer adds (the slope), and the KB per
    customer at `at` customers, on the line through both points."""
    (n_small, kb_small), (n_big, kb_big) = small, big
    if n_big <= n_small:
        raise ValueError("the second size must be larger")
    slope = (kb_big - kb_small) / (n_big - n_small)
    return {"slope_kb": slope, "kb_per_customer_at": (kb_big + slope * (at - n_big)) / at}


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def run_worker(
    stack: LocalStack, app_id: str, store: str, total: int, decoded: int, timeout: float
) -> dict[str, Any]:
    """One worker over the whole backlog: its RSS once done, seconds, RocksDB bytes."""
    env = {"TIERSTREAM_STORE": store, "TIERSTREAM_DECODED_CUSTOMERS": str(decoded)}
    started = time.monotonic()
    with WorkerProcess(stack, app_id, False, **env) as worker:
        deadline = started + timeout
        while worker.consumed() < total:
            if worker.proc is not None and worker.proc.poll() is not None:
                raise SystemExit(f"{app_id} exited; see {worker.log}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{app_id} did not finish {total:,} records in {timeout:.0f} s")
            time.sleep(0.5)
        seconds = time.monotonic() - started
        time.sleep(4)  # the last commit's state writes and Redis flush
        peak, settled = rss_kb(worker.pid())
    say(
        f"{app_id}: {total:,} records in {seconds:.0f} s, peak {peak / 1024:,.0f} MB, now {settled / 1024:,.0f} MB"
    )
    result: dict[str, Any] = {"peak_kb": peak, "settled_kb": settled, "seconds": round(seconds, 1)}
    if store.startswith("rocksdb"):
        data = [p for p in stack.workdir.iterdir() if p.is_dir() and p.name.startswith(app_id)]
        result["rocksdb_bytes"] = sum(dir_bytes(p) for p in data)
    return result


def one_size(
    customers: int, days: int, decoded: int, partitions: int, timeout: float, stores: tuple[str, ...] = STORES
) -> dict[str, Any]:
    prefix = f"mem{customers}."
    with LocalStack(prefix=prefix, partitions=partitions) as stack:
        bank = stack.workdir / "bank.jsonl"
        with bank.open("w", encoding="utf-8") as out:
            write_events(generate_events(customers, days, seed=7, usd=False), out)
        with bank.open("rb") as f:
            total = asyncio.run(replay(stack.settings, read_lines(f), None, False, log=lambda m: None))
        bank.unlink()
        say(f"{customers:,} customers x {days} days: {total:,} records replayed")
        runs = {}
        for store in stores:
            app_id = f"mem{customers}-{store.split(':')[0]}"
            runs[store] = run_worker(stack, app_id, store, total, decoded, timeout)
    return {"customers": customers, "days": days, "records": total, "runs": runs}


def summarize(sizes: list[dict[str, Any]], stores: tuple[str, ...] = STORES) -> dict[str, Any]:
    """Per store: KB per customer at the larger size, slope, and at 1,000,000 (peak and settled)."""
    small, big = sizes
    figures: dict[str, Any] = {}
    for store in stores:
        entry: dict[str, Any] = {}
        for which in ("peak_kb", "settled_kb"):
            a, b = small["runs"][store][which], big["runs"][store][which]
            line = extrapolate((small["customers"], a), (big["customers"], b))
            entry[which.removesuffix("_kb")] = {
                "rss_mb": [round(a / 1024), round(b / 1024)],
                "kb_per_customer": round(b / big["customers"], 2),
                "slope_kb": round(line["slope_kb"], 2),
                "kb_per_customer_at_1m": round(line["kb_per_customer_at"], 2),
            }
        if "rocksdb_bytes" in big["runs"][store]:
            entry["rocksdb_bytes_per_customer"] = round(
                big["runs"][store]["rocksdb_bytes"] / big["customers"]
            )
        figures[store] = entry
    return figures


def measure(
    sizes: tuple[int, int] = (20_000, 100_000),
    days: int = 2,
    partitions: int = 4,
    timeout: float = 900,
    stores: tuple[str, ...] = STORES,
) -> dict[str, Any]:
    figures: dict[str, Any] = {"calibration_s": round(calibration(), 2), "decoded": sizes[0]}
    figures["sizes"] = [one_size(n, days, sizes[0], partitions, timeout, stores) for n in sizes]
    figures["stores"] = summarize(figures["sizes"], stores)
    figures["calibration_after_s"] = round(calibration(), 2)
    return figures


def rows(figures: dict[str, Any]) -> list[Row]:
    small, big = (s["customers"] for s in figures["sizes"])
    days = figures["sizes"][1]["days"]
    out: list[Row] = [
        (
            "calibration around the worker memory runs (s)",
            "(info)",
            f"{figures['calibration_s']:.2f} / {figures['calibration_after_s']:.2f}",
            None,
        )
    ]
    for store, entry in figures["stores"].items():
        peak, settled = entry["peak"], entry["settled"]
        out.append(
            (
                f"worker RSS MB peak, {small:,} / {big:,} x {days} d ({store})",
                "(info)",
                f"{peak['rss_mb'][0]:,} / {peak['rss_mb'][1]:,}",
                None,
            )
        )
        out.append(
            (f"  KB/customer peak at {big:,} ({store})", "(info)", f"{peak['kb_per_customer']:.2f}", None)
        )
        out.append((f"  KB per added customer, peak ({store})", "(info)", f"{peak['slope_kb']:.2f}", None))
        at = peak["kb_per_customer_at_1m"]
        out.append(
            (
                f"  KB/customer peak at {AT_CUSTOMERS:,} (slope; settled {settled['kb_per_customer_at_1m']:.2f})",
                f"<= {TARGET_KB}" if store == "memory://" else "(info)",
                f"{at:.2f}",
                at <= TARGET_KB if store == "memory://" else None,
            )
        )
        if "rocksdb_bytes_per_customer" in entry:
            out.append(
                (
                    f"  RocksDB bytes on disk per customer ({big:,})",
                    "(info)",
                    f"{entry['rocksdb_bytes_per_customer']:,}",
                    None,
                )
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[20_000, 100_000])
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--stores", nargs="+", default=list(STORES), choices=STORES)
    parser.add_argument("--out", default="worker_memory", help="bench/out/<name>.json")
    args = parser.parse_args()
    figures = measure((args.sizes[0], args.sizes[1]), args.days, args.partitions, stores=tuple(args.stores))
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / f"{args.out}.json").write_text(json.dumps(figures, indent=2) + "\n")
    for name, target, shown, ok in rows(figures):
        verdict = "" if ok is None else ("pass" if ok else "MISS")
        print(f"{name:<66}{target:>10}{shown:>14}  {verdict}")
    print(
        f"calibration: a 20-million-step Python loop took {figures['calibration_s']:.2f} s (before) / "
        f"{figures['calibration_after_s']:.2f} s (after)"
    )
    for size in figures["sizes"]:
        for store, run in size["runs"].items():
            print(f"  {size['customers']:>9,} customers, {size['records']:>9,} records, {store:<11} {run}")


if __name__ == "__main__":
    main()
