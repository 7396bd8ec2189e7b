"""Does a record sit on the partition the producers' partitioner predicts?

A customer's state lives on the partition its records arrive on. A producer that
partitions differently from `TIERSTREAM_PARTITIONER` (say librdkafka's default crc32
beside Java's murmur2) splits one customer's records across partitions, and with them
its state; `/customers` and `bootstrap` would look on the wrong partition. Checking
each customer id once is enough to notice such a producer.
"""

from __future__ import annotations

from ..engine.partitioner import partitioner


class RoutingCheck:
    """Remembers the keys it has checked (bounded), so the hot path hashes each once."""

    def __init__(self, partitions: int, name: str, remember: int = 200_000) -> None:
        self.partitions = partitions
        self.name = name
        self.pick = partitioner(name)
        self.remember = remember
        self.checked: set[bytes] = set()

    def expected(self, key: bytes, partition: int) -> int | None:
        """The predicted partition when it differs from `partition`; None when it agrees
        (or the key was already checked)."""
        if key in self.checked:
            return None
        if len(self.checked) >= self.remember:
            self.checked.clear()
        self.checked.add(key)
        predicted = self.pick(key, self.partitions)
        return predicted if predicted != partition else None

    def advice(self, key: bytes, topic: str, partition: int, predicted: int) -> str:
        return (
            f"customer {key.decode('utf-8', 'replace')!r} arrived on {topic} partition {partition}, but "
            f"TIERSTREAM_PARTITIONER={self.name} puts it on {predicted}: a producer partitions differently. "
            "Set TIERSTREAM_PARTITIONER to the producers' partitioner (crc32 for librdkafka's default, "
            "fnv1a for Sarama, murmur2 for Java) or fix the producer (docs/going-live.md)"
        )
