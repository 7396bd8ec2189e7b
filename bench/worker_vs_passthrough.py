"""Worker throughput next to a bare aiokafka consume->produce loop, same broker, same run.

    .venv/bin/python bench/worker_vs_passthrough.py [--customers 2000] [--days 30]

Both read the same backlog (a generated bank replayed into three co-partitioned
topics) from the beginning. The pass-through loop consumes every record and produces
one record per input (the ceiling this machine and broker allow); the worker is
`tierstream run` (memory store, live clock off), timed from its first consumed
record to its last. Prints a table and writes bench/out/worker_vs_passthrough.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tierstream.generate import generate_events, write_events
from tierstream.kafkaio import ensure_topics, replay
from tierstream.localstack import free_port, start_broker, start_redis
from tierstream.settings import Settings
from tierstream.simulate import read_lines


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


def consumed(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("tierstream_records_total")
    )


def run_worker(settings: Settings, total: int, workdir: Path) -> float:
    env = dict(os.environ)
    env.update(
        {
            "TIERSTREAM_BROKER_URL": settings.broker_url,
            "TIERSTREAM_REDIS_URL": settings.redis_url,
            "TIERSTREAM_RULES": "cmb",
            "TIERSTREAM_LIVE_CLOCK": "false",
            "TIERSTREAM_WEB_PORT": str(settings.web_port),
            "TIERSTREAM_APP_ID": settings.app_id,
            "TIERSTREAM_TOPIC_PREFIX": settings.topic_prefix,
            "TIERSTREAM_PARTITIONS": str(settings.partitions),
        }
    )
    with (workdir / "worker.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tierstream.cli", "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
        try:
            first = last = 0.0
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                n = consumed(settings.web_port)
                now = time.perf_counter()
                if n and not first:
                    first = now
                if n >= total:
                    last = now
                    break
                time.sleep(0.1)
            if not last:
                raise SystemExit("the worker did not finish the backlog in 15 minutes")
            return last - first
        finally:
            proc.terminate()
            proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tierstream-bench-"))
    broker, redis_proc = start_broker(workdir), start_redis(workdir)
    try:
        events = workdir / "bank.jsonl"
        with events.open("w", encoding="utf-8") as out:
            write_events(generate_events(args.customers, args.days, seed=7, usd=False), out)
        settings = Settings(
            broker_url=broker.url,
            redis_url=redis_proc.url,
            topic_prefix="bench.",
            app_id="bench-worker",
            partitions=args.partitions,
            live_clock=False,
            web_port=free_port(),
        )
        asyncio.run(ensure_topics(settings, settings.input_topics + settings.output_topics, args.partitions))
        with events.open("rb") as f:
            total = asyncio.run(replay(settings, read_lines(f), None, False, log=lambda m: None))
        pass_s = asyncio.run(passthrough(settings, total))
        worker_s = run_worker(settings, total, workdir)
    finally:
        redis_proc.stop()
        broker.stop()
    result = {
        "records": total,
        "partitions": args.partitions,
        "passthrough_events_per_s": round(total / pass_s),
        "worker_events_per_s": round(total / worker_s),
        "ratio": round(pass_s / worker_s, 3),
    }
    print(f"{'backlog records':<28}{total:>12,}")
    print(f"{'passthrough_events_per_s':<28}{result['passthrough_events_per_s']:>12,}")
    print(f"{'worker_events_per_s':<28}{result['worker_events_per_s']:>12,}")
    print(f"{'worker / passthrough':<28}{result['ratio']:>12.3f}")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "worker_vs_passthrough.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
