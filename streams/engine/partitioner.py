"""Which partition a producer puts a customer's records on (pure: no Kafka client).

A customer's state lives on the partition its records arrive on, so every tierstream
producer, the customers API and `bootstrap` must agree with the bank's producers.
The three defaults in the wild:

| name | who defaults to it | partition of a key |
|---|---|---|
| `murmur2` | Java client, aiokafka, Kafka Streams | (murmur2(key) & 0x7fffffff) % n |
| `crc32` (`consistent_random`, `consistent`) | librdkafka (confluent-kafka, kcat) | crc32(key) % n |
| `fnv1a` (`fnv1a_random`) | Sarama (Go), librdkafka's fnv1a | abs(int32(fnv1a32(key))) % n |
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

PARTITIONERS = ("murmur2", "crc32", "consistent_random", "consistent", "fnv1a", "fnv1a_random")


def murmur2(data: bytes) -> int:
    """The Java client's murmur2 (seed 0x9747b28c), as an unsigned 32-bit int."""
    length = len(data)
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length % 4
    base = length - rest
    if rest == 3:
        h ^= data[base + 2] << 16
    if rest >= 2:
        h ^= data[base + 1] << 8
    if rest >= 1:
        h ^= data[base]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def _murmur2_partition(key: bytes, n: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % n


def _crc32_partition(key: bytes, n: int) -> int:
    return zlib.crc32(key) % n


def _fnv1a_partition(key: bytes, n: int) -> int:
    h = fnv1a32(key)
    signed = h - (1 << 32) if h & 0x80000000 else h
    return abs(signed) % n


_BY_NAME: dict[str, Callable[[bytes, int], int]] = {
    "murmur2": _murmur2_partition,
    "crc32": _crc32_partition,
    "consistent_random": _crc32_partition,
    "consistent": _crc32_partition,
    "fnv1a": _fnv1a_partition,
    "fnv1a_random": _fnv1a_partition,
}


def partitioner(name: str) -> Callable[[bytes, int], int]:
    """(key bytes, partition count) -> partition, for a partitioner named in PARTITIONERS."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown partitioner {name!r}; use one of {', '.join(PARTITIONERS)}") from None


def partition_for(customer_id: str, partitions: int, name: str = "murmur2") -> int:
    """The partition of a customer's records under a producers' partitioner."""
    return partitioner(name)(customer_id.encode("utf-8"), partitions)
