"""`make stack`: a local broker (Tansu) and redis-server for `replay`, `capture` and `run`
outside the demo, on free ports, until Ctrl-C.

It prints the settings to paste into other terminals; Ctrl-C stops Redis, then the
broker (each in its own process group, so the terminal's signal reaches only this
process). The broker keeps its topics in memory: they go with it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path

from .localstack import start_broker, start_redis


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="make stack", description=__doc__.splitlines()[0])
    parser.add_argument("--broker-port", type=int, default=None, help="[a free port]")
    parser.add_argument("--redis-port", type=int, default=None, help="[a free port]")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="tierstream-stack-"))
    broker = start_broker(workdir, args.broker_port, new_session=True)
    redis = start_redis(workdir, args.redis_port, new_session=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(
        f"broker {broker.url} and redis-server {redis.url} are up (logs in {workdir}); "
        "in another terminal:\n"
        f"  export TIERSTREAM_BROKER_URL={broker.url} TIERSTREAM_REDIS_URL={redis.url} "
        "TIERSTREAM_LIVE_CLOCK=false\n"
        "  .venv/bin/tierstream run --partitions 4 --create-topics &\n"
        "  .venv/bin/tierstream replay --events bank.jsonl\n"
        "  .venv/bin/tierstream capture --out outputs.jsonl\n"
        "Ctrl-C here stops both.",
        flush=True,
    )
    try:
        stop.wait()
    finally:
        redis.stop(2.0)
        broker.stop(2.0)
        print("stopped redis-server and the broker", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
