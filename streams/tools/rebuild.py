"""`tierstream redis rebuild`: rewrite the Redis cache from the tables' changelog.

The changelog topic (`<app id>-customers-changelog`) holds every customer's latest
state and each partition's marker; reading it from the beginning and keeping the
last value per key gives the tables, exactly as a worker's recovery does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from ..broker import client_kwargs, start_client
from ..contract import MARKER_PREFIX
from ..engine import codec
from ..engine.partition import PartitionEngine
from ..engine.rules import Rules
from ..serving import CUSTOMER_KEY, EPOCH_KEY, TIER_COUNTS_KEY, customer_fields, redis_client
from ..settings import Settings


async def read_changelog(settings: Settings, idle_seconds: float = 2.0) -> dict[bytes, bytes]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic = settings.changelog_topic
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await start_client(consumer, settings)  # a broker that is down: one line, the consumer closed
    latest: dict[bytes, bytes] = {}
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer.stop()
            consumer = AIOKafkaConsumer(
                **client_kwargs(settings), enable_auto_commit=False, auto_offset_reset="earliest"
            )
            await start_client(consumer, settings)
            await consumer.topics()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return latest
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while True:
            batch = await consumer.getmany(*tps, timeout_ms=int(idle_seconds * 1000), max_records=10_000)
            if not batch:
                break
            for records in batch.values():
                for r in records:
                    if r.key is not None and r.value is not None:
                        latest[r.key] = r.value
    finally:
        await consumer.stop()
    return latest


async def rebuild(settings: Settings, rules: Rules) -> tuple[int, dict[str, int]]:
    """Write every customer's hash and the tier counts; returns (customers, counts)."""
    tables = await read_changelog(settings)
    engine = PartitionEngine(rules)
    specs = engine.ledger.specs
    client: Any = redis_client(settings)
    counts = dict.fromkeys(rules.tier_ids, 0)
    written = 0
    try:
        pipe = client.pipeline(transaction=False)
        for key, value in tables.items():
            if key.startswith(MARKER_PREFIX):
                partition = int(key[len(MARKER_PREFIX) :])
                marker = orjson.loads(value)
                pipe.hset(
                    f"{TIER_COUNTS_KEY}:p{partition}",
                    mapping={t: marker.get("counts", {}).get(t, 0) for t in rules.tier_ids},
                )
                continue
            customer = codec.decode(value, specs)
            counts[rules.tier_ids[customer.tier]] += 1
            pipe.hset(
                CUSTOMER_KEY.format(key.decode("utf-8")), mapping=customer_fields(engine, customer, rules)
            )
            written += 1
            if written % 1000 == 0:
                await pipe.execute()
                pipe = client.pipeline(transaction=False)
        pipe.hset(TIER_COUNTS_KEY, mapping=counts)
        pipe.set(EPOCH_KEY, settings.app_id)
        await pipe.execute()
    finally:
        await client.aclose()
    return written, counts


def run_rebuild(settings: Settings, rules: Rules) -> tuple[int, dict[str, int]]:
    return asyncio.run(rebuild(settings, rules))
