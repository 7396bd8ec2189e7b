"""The producers' partitioners, against the clients that define them."""

from __future__ import annotations

import zlib

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from tierstream.engine.partitioner import PARTITIONERS, fnv1a32, murmur2, partition_for, partitioner


@given(st.binary(max_size=64))
def test_murmur2_is_the_java_clients(key: bytes) -> None:
    assert murmur2(key) == aiokafka_murmur2(key)


@pytest.mark.parametrize(
    ("data", "expected"),
    [(b"", 0x811C9DC5), (b"a", 0xE40C292C), (b"foobar", 0xBF9CF968)],  # FNV-1a 32 reference vectors
)
def test_fnv1a32_reference_vectors(data: bytes, expected: int) -> None:
    assert fnv1a32(data) == expected


@given(st.text(min_size=1, max_size=30), st.integers(min_value=1, max_value=64))
def test_every_partitioner_stays_in_range_and_crc32_is_zlibs(customer: str, n: int) -> None:
    for name in PARTITIONERS:
        assert 0 <= partition_for(customer, n, name) < n
    assert partition_for(customer, n, "consistent_random") == zlib.crc32(customer.encode()) % n


def test_an_unknown_partitioner_is_named() -> None:
    with pytest.raises(ValueError, match="unknown partitioner 'random'; use one of murmur2"):
        partitioner("random")
