"""The worker's check that customers arrive where the producers' partitioner says."""

from __future__ import annotations

from tierstream.engine.partition import PartitionEngine
from tierstream.engine.partitioner import partition_for
from tierstream.engine.rules import load_rules
from tierstream.worker.routing import RoutingCheck
from tierstream.worker.store import CustomerStore


def test_a_customer_on_the_predicted_partition_passes_and_another_is_named() -> None:
    check = RoutingCheck(8, "murmur2")
    right = partition_for("C001", 8, "murmur2")
    assert check.expected("C001", right) is None
    wrong = (partition_for("C002", 8, "murmur2") + 1) % 8
    assert check.expected("C002", wrong) == partition_for("C002", 8, "murmur2")
    assert "TIERSTREAM_PARTITIONER=murmur2" in check.advice("C002", "bank.balances", wrong, 3)


def test_the_store_lists_the_customers_it_creates_not_those_it_holds() -> None:
    """What the worker checks: each customer once, when a partition first sees it."""
    rules = load_rules("cmb")
    engine = PartitionEngine(rules, eager=False)
    table: dict[bytes, bytes] = {}
    store = CustomerStore(table, engine.ledger.specs, partition=2)
    store["new"] = engine.ledger.new_customer(19675, 0)
    assert store.created == ["new"]
    store.created.clear()
    store["new"] = store["new"]  # written again: not created
    assert store.created == []
