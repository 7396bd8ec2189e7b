"""Bootstrap speed and memory, beside a plain DuckDB scan of the same files (issue 11).

A synthetic CCB warehouse snapshot (`bench.warehouse`, Parquet) of N customers × D days
is checked and turned into encoded customer states exactly as `tierstream bootstrap`
does before it writes to the broker (`golive.bootstrap.stage`: validation, day series,
seeding, encoding, staging file), in a fresh process that reports its peak RSS. The
reference is DuckDB reading the same files and grouping by customer with sums.

    .venv/bin/python -m bench.bootstrap [--customers 100000] [--days 400]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from bench.warehouse import scan_and_group, write_warehouse

AS_OF = date(2026, 3, 31)

_STAGE = """
import json, time
from pathlib import Path
from tierstream.engine.rules import load_rules
from tierstream.golive.bootstrap import stage
from tierstream.golive.load import open_source
from tierstream.settings import Settings
rules = load_rules("ccb")
t0 = time.perf_counter()
source = open_source(Path({folder!r}), rules, {as_of!r})
t1 = time.perf_counter()
summary, parts = stage(Settings(partitions=8), rules, source, None, Path({staging!r}))
t2 = time.perf_counter()
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({{"customers": summary.customers, "check_s": t1 - t0, "stage_s": t2 - t1,
                  "bytes": summary.bytes_written, "rss_mb": int(hwm.split()[1]) / 1024}}))
"""


def measure(customers: int, days: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-bootstrap-") as tmp:
        folder = Path(tmp) / "warehouse"
        rows = write_warehouse(folder, customers, days, AS_OF)
        scan = min(scan_and_group(folder) for _ in range(3))
        code = _STAGE.format(
            folder=str(folder), as_of=AS_OF.isoformat(), staging=str(Path(tmp) / "states.bin")
        )
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
        wall = time.perf_counter() - started
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    total_rows = rows["balances"] + rows["activity"] + rows["customers"] + rows["attributes"]
    seconds = result["check_s"] + result["stage_s"]
    result.update(
        days=days,
        rows=total_rows,
        scan_s=scan,
        seconds=seconds,
        wall_s=wall,
        rows_per_s=total_rows / seconds,
        customers_per_s=customers / seconds,
        ratio_to_scan=seconds / scan,
        hours_for_10m=10_000_000 / (customers / seconds) / 3600,
        rss_kb_per_customer=result["rss_mb"] * 1024 / customers,
        state_bytes_per_customer=result["bytes"] / customers,
    )
    return result


def calibration() -> float:
    """A fixed pure-Python loop's time (20 million steps): read figures against it."""
    started = time.perf_counter()
    total = 0
    for i in range(20_000_000):
        total += i
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=400)
    args = parser.parse_args()
    print(f"calibration: a 20-million-step Python loop took {calibration():.2f} s")
    r = measure(args.customers, args.days)
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}, indent=2))


if __name__ == "__main__":
    main()
