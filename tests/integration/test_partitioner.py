"""librdkafka (confluent-kafka) puts keys where our partitioners say, for each of its
partitioners a bank's producers may use."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Producer
from pydantic import SecretStr

from tierstream.broker import ensure_topics
from tierstream.engine.partitioner import partition_for
from tierstream.settings import Settings
from tierstream.testing.localstack import Proc
from tierstream.testing.worker import WorkerProcess

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


def _produce_bank(settings: Settings, customers: int, partitioner: str) -> int:
    """Valid balance records for `customers` customers, produced by librdkafka."""
    host = settings.broker_url.removeprefix("kafka://")
    asyncio.run(ensure_topics(settings, settings.input_topics, settings.partitions))
    producer = Producer({"bootstrap.servers": host, "partitioner": partitioner, "log_level": 3})
    sent = 0
    for i in range(customers):
        for day in (1, 2):
            value = {
                "event_id": f"b{i}-{day}",
                "customer_id": f"C{i:05d}",
                "account_id": f"C{i:05d}-D",
                "product": "deposit",
                "balance": f"{(i + 1) * 10_000}.00",
                "ts": f"2026-03-0{day}T10:00:00+08:00",
            }
            producer.produce(
                settings.topic("bank.balances"), key=value["customer_id"], value=json.dumps(value)
            )
            sent += 1
    assert producer.flush(20) == 0
    return sent


@pytest.mark.parametrize(
    ("librdkafka", "setting", "store", "misrouted"),
    [
        ("consistent_random", "crc32", "rocksdb://", False),
        ("fnv1a_random", "fnv1a", "memory://", False),
        ("murmur2_random", "murmur2", "memory://", False),
        ("consistent_random", "murmur2", "rocksdb://", True),
    ],
)
def test_the_worker_finds_librdkafka_customers_and_notices_a_disagreeing_producer(
    settings: Settings, tmp_path: Path, librdkafka: str, setting: str, store: str, misrouted: bool
) -> None:
    token = "t0ken"
    configured = settings.model_copy(
        update={"partitioner": setting, "store": store, "api_token": SecretStr(token)}
    )
    sent = _produce_bank(configured, 30, librdkafka)
    worker = WorkerProcess(configured, "cmb", tmp_path / "worker.log")
    try:
        worker.wait_for(lambda: worker.consumed() >= sent, 120, f"{sent} records consumed")
        worker.wait_for(lambda: worker.lag() == 0, 60, "lag 0")
        counted = sum(
            v for k, v in worker.metrics().items() if k.startswith("tierstream_misrouted_records_total")
        )
        found = 0
        for i in range(30):
            request = urllib.request.Request(
                f"http://127.0.0.1:{configured.web_port}/customers/C{i:05d}",
                headers={"Authorization": f"Bearer {token}"},
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    found += answer.status == 200
            except urllib.error.HTTPError as exc:
                assert exc.code == 404
    finally:
        worker.stop()
    log = (tmp_path / "worker.log").read_text("utf-8", "replace")
    if misrouted:
        assert counted > 0 and "a producer partitions differently" in log
        assert found < 30  # routing by murmur2 looks on the wrong partition for most
    else:
        assert counted == 0 and "partitions differently" not in log
        assert found == 30  # every customer, whatever the store
