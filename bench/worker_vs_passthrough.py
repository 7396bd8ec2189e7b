"""Worker throughput next to a bare aiokafka consume->produce loop, same broker, same run.

    .venv/bin/python -m bench.worker_vs_passthrough [--customers 2000] [--days 30]

Both read the same backlog (a generated bank replayed into three co-partitioned
topics) from the beginning. The pass-through loop consumes every record and produces
one record per input (the ceiling this machine and broker allow); the worker is
`tierstream run` (memory store, live clock off), timed from its first consumed
record to its last. The worker's table changelog is then read end to end for
`changelog_bytes_per_event`. `BENCH_PYSPY=file` also records a 10 s py-spy profile
of the worker (speedscope format).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.stack import LocalStack, WorkerProcess, changelog_size, report
from tierstream.broker import ensure_topics
from tierstream.settings import Settings
from tierstream.tools.generate import generate_events, write_events
from tierstream.tools.kafkaio import replay
from tierstream.tools.simulate import read_lines


async def passthrough(settings: Settings, total: int) -> float:
    """Seconds from the first consumed record to the last produced one."""
    out_topic = settings.topic("passthrough.out")
    await ensure_topics(settings, [out_topic], settings.partitions)
    consumer = AIOKafkaConsumer(
        *settings.input_topics,
        bootstrap_servers=settings.bootstrap_servers,
        group_id="passthrough",
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        max_poll_records=2000,
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=5, acks=1)
    await consumer.start()
    await producer.start()
    seen = 0
    first = 0.0
    try:
        while seen < total:
            batch = await consumer.getmany(timeout_ms=1000)
            futures = []
            for records in batch.values():
                for r in records:
                    if not first:
                        first = time.perf_counter()
                    futures.append(await producer.send(out_topic, r.value, key=r.key))
                    seen += 1
            if futures:
                await asyncio.gather(*futures)
    finally:
        await producer.stop()
        await consumer.stop()
    return time.perf_counter() - first


def time_worker(stack: LocalStack, total: int) -> tuple[float, str]:
    """Seconds from the worker's first consumed record to its last, and its app id."""
    app_id = stack.settings.app_id
    with WorkerProcess(stack, app_id) as worker:
        first = last = 0.0
        profiler: subprocess.Popen[bytes] | None = None
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            n = worker.consumed()
            now = time.perf_counter()
            if n and not first:
                first = now
                if os.environ.get("BENCH_PYSPY"):  # profile the worker while it consumes
                    spy = Path(sys.executable).with_name("py-spy")
                    command = [str(spy), "record", "--pid", str(worker.pid()), "--duration", "10"]
                    command += ["-f", "speedscope", "-o", os.environ["BENCH_PYSPY"]]
                    profiler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if n >= total:
                last = now
                break
            time.sleep(0.05)
        if profiler is not None:
            profiler.wait(60)
        if not last:
            raise SystemExit("the worker did not finish the backlog in 15 minutes")
        time.sleep(2)  # the last commit's state writes
    return last - first, app_id


def measure(stack: LocalStack, customers: int, days: int) -> dict[str, Any]:
    settings = stack.settings
    events = stack.workdir / "bank.jsonl"
    with events.open("w", encoding="utf-8") as out:
        write_events(generate_events(customers, days, seed=7, usd=False), out)
    with events.open("rb") as f:
        total = asyncio.run(replay(settings, read_lines(f), None, False, log=lambda m: None))
    pass_s = asyncio.run(passthrough(settings, total))
    worker_s, app_id = time_worker(stack, total)
    records, size = changelog_size(settings, app_id)
    return {
        "records": total,
        "customers": customers,
        "days": days,
        "partitions": settings.partitions,
        "passthrough_events_per_s": round(total / pass_s),
        "worker_events_per_s": round(total / worker_s),
        "ratio": round(pass_s / worker_s, 3),
        "changelog_records": records,
        "changelog_bytes": size,
        "changelog_bytes_per_event": round(size / total, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    with LocalStack(partitions=args.partitions) as stack:
        result = measure(stack, args.customers, args.days)
    report("worker_vs_passthrough", result)


if __name__ == "__main__":
    main()
