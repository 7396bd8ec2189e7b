"""One state run of `make bench`, in a process of its own (bench/run.py starts it), so that
its peak RSS is the run's alone:

    .venv/bin/python -m bench.state_run <rules preset> <customers> <days>

Prints one JSON line: events, seconds, state bytes per customer, peak RSS in MB.
"""

from __future__ import annotations

import functools
import json
import sys
import time

import orjson

from bench.run import state_bytes
from tierstream.contract import PROFILES
from tierstream.engine.jsonio import loads
from tierstream.engine.partition import PartitionEngine
from tierstream.engine.rules import load_rules
from tierstream.tools.generate import generate_events


def main(argv: list[str]) -> None:
    rules, customers, days = argv[0], int(argv[1]), int(argv[2])
    engine = PartitionEngine(load_rules(rules))
    n = 0
    start = time.perf_counter()
    # generated values go in as parsed values (apply -> evaluate; parsing is measured by the
    # engine run); profiles carry float attributes, which only the JSON text makes exact
    for i, line in enumerate(generate_events(customers, days, seed=2, usd=False)):
        value = line["value"]
        if line["topic"] == PROFILES:
            value = loads(orjson.dumps(value).decode())
        engine.process_value(line["topic"], value, functools.partial(orjson.dumps, value), offset=i)
        n += 1
    assert engine.outcomes["dead_letter"] == 0, engine.dead_letters
    elapsed = time.perf_counter() - start
    # VmHWM is this process's own peak: ru_maxrss would carry the parent's RSS over fork + exec
    with open("/proc/self/status") as status:
        hwm = next(line for line in status if line.startswith("VmHWM:"))
    result = {
        "events": n,
        "seconds": elapsed,
        "state_bytes": state_bytes(engine),
        "rss_mb": int(hwm.split()[1]) / 1024,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
