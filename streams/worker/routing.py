"""Does a customer arrive on the partition the producers' partitioner predicts?

A customer's state lives on the partition its records arrive on. A producer that
partitions differently from `TIERSTREAM_PARTITIONER` (say librdkafka's default crc32
beside Java's murmur2) splits one customer's records across partitions, and with them
its state; `/customers` and `bootstrap` would look on the wrong partition. Such a
producer shows where a customer is first seen on a partition, so the worker checks each
customer a partition creates (`CustomerStore.created`): nothing to remember, and no
cost on the records of customers it already holds.
"""

from __future__ import annotations

from ..engine.partitioner import partitioner


class RoutingCheck:
    """The partition the producers' partitioner puts a customer id on."""

    def __init__(self, partitions: int, name: str) -> None:
        self.partitions = partitions
        self.name = name
        self.pick = partitioner(name)

    def expected(self, customer_id: str, partition: int) -> int | None:
        """The predicted partition when it differs from `partition`; None when it agrees."""
        predicted = self.pick(customer_id.encode("utf-8"), self.partitions)
        return predicted if predicted != partition else None

    def advice(self, customer_id: str, topic: str, partition: int, predicted: int) -> str:
        return (
            f"customer {customer_id!r} arrived on {topic} partition {partition}, but "
            f"TIERSTREAM_PARTITIONER={self.name} puts it on {predicted}: a producer partitions differently. "
            "Set TIERSTREAM_PARTITIONER to the producers' partitioner (crc32 for librdkafka's default, "
            "fnv1a for Sarama, murmur2 for Java) or fix the producer (docs/going-live.md)"
        )
