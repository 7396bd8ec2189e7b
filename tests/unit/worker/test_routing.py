"""The worker's check that records arrive where the producers' partitioner says."""

from __future__ import annotations

from tierstream.engine.partitioner import partition_for
from tierstream.worker.routing import RoutingCheck


def test_a_record_on_the_predicted_partition_passes_and_another_is_named() -> None:
    check = RoutingCheck(8, "murmur2")
    right = partition_for("C001", 8, "murmur2")
    assert check.expected(b"C001", right) is None
    wrong = (partition_for("C002", 8, "murmur2") + 1) % 8
    assert check.expected(b"C002", wrong) == partition_for("C002", 8, "murmur2")
    assert "TIERSTREAM_PARTITIONER=murmur2" in check.advice(b"C002", "bank.balances", wrong, 3)


def test_each_customer_is_checked_once_and_memory_is_bounded() -> None:
    check = RoutingCheck(8, "crc32", remember=3)
    wrong = (partition_for("C9", 8, "crc32") + 1) % 8
    assert check.expected(b"C9", wrong) is not None
    assert check.expected(b"C9", wrong) is None  # told once: the counter is per new customer
    for key in (b"a", b"b", b"c"):
        check.expected(key, 0)
    assert len(check.checked) <= 3
