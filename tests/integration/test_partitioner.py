"""librdkafka (confluent-kafka) puts keys where our partitioners say, for each of its
partitioners a bank's producers may use."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka import Producer

from tierstream.engine.partitioner import partition_for
from tierstream.kafkaio import ensure_topics
from tierstream.localstack import Proc

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("librdkafka", "ours"),
    [("murmur2_random", "murmur2"), ("consistent_random", "crc32"), ("fnv1a_random", "fnv1a")],
)
def test_librdkafka_partitions_as_we_route(
    broker: Proc, topic_prefix: str, librdkafka: str, ours: str
) -> None:
    topic = f"{topic_prefix}keys"
    host = broker.url.removeprefix("kafka://")
    asyncio.run(ensure_topics(host, [topic], 7))
    placed: dict[str, int] = {}

    def delivered(err: object, msg: object) -> None:
        assert err is None, err
        placed[msg.key().decode()] = msg.partition()  # type: ignore[attr-defined]

    producer = Producer({"bootstrap.servers": host, "partitioner": librdkafka, "log_level": 3})
    keys = [f"C{i:06d}" for i in range(150)] + [f"客户-{i}-é" for i in range(50)]
    for key in keys:
        producer.produce(topic, key=key.encode(), value=b"{}", on_delivery=delivered)
    assert producer.flush(20) == 0
    assert len(placed) == len(keys)
    assert len(set(placed.values())) == 7  # the keys spread over every partition
    assert {k: partition_for(k, 7, ours) for k in keys} == placed
