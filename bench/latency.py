"""Event-to-output latency at a steady offered rate, measured twice: by the worker's
own histogram and by a consumer of the output topics.

    .venv/bin/python -m bench.latency [--rate 2000] [--seconds 60] [--warmup 10]

A generated bank is sent live: each event's `ts` and its record timestamp are the
wall-clock instant it is handed to the producer, paced at `--rate` events/s. An
output's `effective_at` is the evaluation instant, which for an event-triggered
output is that event's `ts`; the consumer counts only outputs whose
(customer, effective_at) is an event it sent, so latency = output received - event
sent, both on this machine's clock. Outputs of the first `--warmup` seconds are left
out of both figures (the worker's histogram is read before and after and subtracted).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.stack import LocalStack, WorkerProcess, report
from tierstream.contract import BUSINESS_TOPICS as OUTPUT_TOPICS
from tierstream.testing import prometheus
from tierstream.tools.generate import generate_events

US = 1_000_000


def histogram(text: str, name: str = "tierstream_event_to_output_seconds") -> dict[float, float]:
    """Cumulative bucket counts {upper bound: count} of a Prometheus histogram."""
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            labels, value = line.rsplit(" ", 1)
            bound = labels.split('le="', 1)[1].split('"', 1)[0]
            buckets[float("inf") if bound == "+Inf" else float(bound)] = float(value)
    return buckets


def histogram_quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float | None:
    """Prometheus' histogram_quantile over the difference of two scrapes (linear within
    a bucket), in seconds; None without observations."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= rank:
            if bound == float("inf"):
                return lower
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, cumulative
    return lower


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _live_lines(customers: int, days: int) -> Iterator[dict[str, Any]]:
    for line in generate_events(customers, days, seed=11, usd=False):
        if isinstance(line["value"], dict):
            yield line


async def offer_load(
    stack: LocalStack, rate: int, seconds: float, warmup: float, customers: int
) -> tuple[dict[tuple[str, int], float], int]:
    """Send events at `rate`/s for `seconds`; return {(customer, ts µs): sent} of the
    events sent after the warm-up, and the count sent."""
    settings = stack.settings
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=0, acks=1)
    await producer.start()
    sent: dict[tuple[str, int], float] = {}
    lines = _live_lines(customers, days=3650)
    start = time.time()
    warm_until = start + warmup
    count = 0
    try:
        while True:
            now = time.time()
            if now - start >= seconds:
                break
            due = int((now - start) * rate) - count
            for _ in range(due):
                line = next(lines)
                value = line["value"]
                stamp = time.time()
                us = int(stamp * US)
                value["ts"] = datetime.fromtimestamp(us / US, UTC).isoformat()
                cid = value["customer_id"]
                await producer.send(
                    settings.topic(line["topic"]),
                    orjson.dumps(value),
                    key=cid.encode(),
                    timestamp_ms=us // 1000,
                )
                if stamp >= warm_until:
                    sent[(cid, us)] = stamp
                count += 1
            await asyncio.sleep(0.005)
        await producer.flush()
    finally:
        await producer.stop()
    return sent, count


async def collect_outputs(stack: LocalStack, stop: asyncio.Event) -> list[tuple[str, int, float]]:
    """(customer, effective_at µs, received wall time) of every output record."""
    settings = stack.settings
    consumer = AIOKafkaConsumer(
        *(settings.topic(t) for t in OUTPUT_TOPICS),
        bootstrap_servers=settings.bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,  # the local broker holds a fetch this long (see the worker)
    )
    await consumer.start()
    got: list[tuple[str, int, float]] = []
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            received = time.time()
            for records in batch.values():
                for r in records:
                    value = orjson.loads(r.value)
                    effective = datetime.fromisoformat(value["effective_at"])
                    us = int(effective.timestamp()) * US + effective.microsecond
                    got.append((value["customer_id"], us, received))
    finally:
        await consumer.stop()
    return got


async def _measure(stack: LocalStack, worker: WorkerProcess, args: argparse.Namespace) -> dict[str, Any]:
    stop = asyncio.Event()
    collector = asyncio.create_task(collect_outputs(stack, stop))
    load = asyncio.create_task(offer_load(stack, args.rate, args.seconds, args.warmup, args.customers))
    await asyncio.sleep(args.warmup)
    before = histogram(await asyncio.to_thread(prometheus.scrape, worker.port, 5.0))
    sent, count = await load
    await asyncio.sleep(3)  # the last outputs
    after = histogram(await asyncio.to_thread(prometheus.scrape, worker.port, 5.0))
    stop.set()
    got = await collector
    latencies = [(received - sent[(cid, us)]) * 1000 for cid, us, received in got if (cid, us) in sent]
    worker_p50 = histogram_quantile(0.5, before, after)
    worker_p99 = histogram_quantile(0.99, before, after)
    return {
        "offered_rate": args.rate,
        "seconds": args.seconds,
        "events_sent": count,
        "outputs_measured": len(latencies),
        "latency_p50_ms": round(percentile(latencies, 0.5) or 0.0, 1),
        "latency_p99_ms": round(percentile(latencies, 0.99) or 0.0, 1),
        "latency_max_ms": round(max(latencies, default=0.0), 1),
        "worker_latency_p50_ms": None if worker_p50 is None else round(worker_p50 * 1000, 1),
        "worker_latency_p99_ms": None if worker_p99 is None else round(worker_p99 * 1000, 1),
        "worker_observations": round(after.get(float("inf"), 0) - before.get(float("inf"), 0)),
    }


def measure(stack: LocalStack, args: argparse.Namespace) -> dict[str, Any]:
    """One worker (live clock on, as in production) under the offered load."""
    with WorkerProcess(stack, stack.settings.app_id + "-latency", live_clock=True) as worker:
        return asyncio.run(_measure(stack, worker, args))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=int, default=2000, help="offered events/s")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the load is offered")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds left out of the figures")
    parser.add_argument("--customers", type=int, default=20_000, help="customers in the live bank")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args()
    with LocalStack(prefix="latency.") as stack:
        result = measure(stack, args)
    report("latency", result)


if __name__ == "__main__":
    main()
