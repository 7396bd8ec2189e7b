"""Memory of a state export and of a bootstrap from it (issue 11: 1,000,000 customers
must fit in 24 GiB). Each step runs in a fresh process that reports its peak RSS.

    .venv/bin/python -m bench.export_bootstrap [--customers 200000] [--days 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

_EXPORT = """
import json, time
from pathlib import Path
from tierstream.engine.rules import load_rules
from tierstream.tools.generate import generate_events
from tierstream.engine.partition import PartitionEngine
from tierstream.golive.export import engine_manifest
from tierstream.golive.statefile import write_export
from tierstream.tools.simulate import feed_line
import orjson
rules = load_rules("cmb")
engine = PartitionEngine(rules)
for n, event in enumerate(generate_events({customers}, {days}, 7, None, False, False, usd=False)):
    feed_line(engine, n, orjson.dumps(event))
t0 = time.perf_counter()
rows = ((0, engine.record(cid)) for cid in engine.customers)
n = write_export(Path({out!r}), engine_manifest(engine, rules, "murmur2"), rows, engine.calendar)
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({{"customers": n, "export_s": time.perf_counter() - t0, "rss_mb": int(hwm.split()[1]) / 1024}}))
"""

_STAGE = """
import json, time
from pathlib import Path
from tierstream.engine.rules import load_rules
from tierstream.golive.bootstrap import stage
from tierstream.golive.load import open_source
from tierstream.settings import Settings
rules = load_rules("cmb")
t0 = time.perf_counter()
summary, _ = stage(Settings(partitions=32), rules, open_source(Path({out!r}), rules, None), None, Path({staging!r}))
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({{"customers": summary.customers, "stage_s": time.perf_counter() - t0, "rss_mb": int(hwm.split()[1]) / 1024}}))
"""


def run(code: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        out = Path(tmp) / "export"
        out.mkdir()
        exported = run(_EXPORT.format(customers=args.customers, days=args.days, out=str(out)))
        size = sum(p.stat().st_size for p in out.iterdir())
        staged = run(_STAGE.format(out=str(out), staging=str(Path(tmp) / "states.bin")))
    per = args.customers / 1_000_000
    print(json.dumps({"export": exported, "export_bytes_per_customer": size / args.customers,
                      "bootstrap_from_export": staged,
                      "rss_gb_at_1m_extrapolated": {"export": exported["rss_mb"] / per / 1024,
                                                    "bootstrap": staged["rss_mb"] / per / 1024}}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
