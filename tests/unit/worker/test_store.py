"""The customers table of one partition and its marker, over a dict (no Faust)."""

from __future__ import annotations

from collections import deque

import pytest

from tierstream.contract import marker_key
from tierstream.engine import codec
from tierstream.engine.evaluate import series_specs
from tierstream.engine.partition import PartitionEngine
from tierstream.engine.rules import Rules, load_rules
from tierstream.worker.store import CustomerStore, Partition, ShapeMismatch, load_marker, marker_of

TOPICS = {"t.balances": 0, "t.transactions": 1, "t.profiles": 2}


@pytest.fixture
def rules() -> Rules:
    return load_rules("cmb")


def partition(rules: Rules, table: dict[bytes, bytes], number: int = 3) -> Partition:
    engine = PartitionEngine(rules, eager=False)
    store = CustomerStore(table, engine.ledger.specs)
    engine.customers = store
    return Partition(number, engine, store, {t: deque() for t in TOPICS})


def shape(rules: Rules) -> dict[str, object]:
    return codec.state_shape(rules.tier_ids, series_specs(rules))


def test_the_marker_round_trips_clock_counts_and_offsets(rules: Rules) -> None:
    table: dict[bytes, bytes] = {}
    part = partition(rules, table)
    part.engine.clock, part.engine.clock_day, part.swept_day = 1_700_000_000_000_000, 19675, 19674
    part.tier_counts = {rules.tier_ids[0]: 5}
    part.applied = {"t.balances": 41, "t.profiles": 2}
    table[marker_key(3)] = marker_of(part, shape(rules), TOPICS)

    restarted = partition(rules, table)
    load_marker(restarted, table, shape(rules), TOPICS)
    assert restarted.engine.clock == 1_700_000_000_000_000 and restarted.engine.clock_day == 19675
    assert restarted.swept_day == 19674
    assert restarted.tier_counts == {rules.tier_ids[0]: 5}
    assert restarted.applied == {"t.balances": 41, "t.profiles": 2}


def test_no_marker_leaves_a_fresh_partition(rules: Rules) -> None:
    part = partition(rules, {})
    load_marker(part, {}, shape(rules), TOPICS)
    assert part.engine.clock is None and part.applied == {} and part.tier_counts == {}


def test_a_marker_of_another_shape_is_refused(rules: Rules) -> None:
    table: dict[bytes, bytes] = {}
    part = partition(rules, table)
    table[marker_key(3)] = marker_of(part, shape(load_rules("ccb")), TOPICS)
    with pytest.raises(ShapeMismatch):
        load_marker(partition(rules, table), table, shape(rules), TOPICS)


def test_a_customer_is_written_once_and_only_when_changed(rules: Rules) -> None:
    table: dict[bytes, bytes] = {}
    part = partition(rules, table)
    store = part.store
    store["c1"] = part.engine.ledger.new_customer(19675, 0)
    changed = store.take_touched(3)
    assert [(cid, new) for cid, _, new in changed] == [("c1", True)]
    table[b"c1"] = changed[0][1]
    assert store.take_touched(3) == [], "nothing touched since"
    _ = store["c1"]  # read while tracking: touched, but its encoding did not change
    assert store.take_touched(3) == []


def test_reads_while_not_tracking_are_not_written(rules: Rules) -> None:
    table: dict[bytes, bytes] = {}
    part = partition(rules, table)
    table[b"c1"] = codec.encode(part.engine.ledger.new_customer(19675, 0), part.store.specs, 3)
    part.store.tracking = False
    assert part.store["c1"].tier == 0
    assert part.store.touched == set()


def test_load_ids_keeps_this_partitions_customers_and_skips_markers(rules: Rules) -> None:
    table: dict[bytes, bytes] = {}
    specs = partition(rules, table).store.specs
    fresh = partition(rules, table).engine.ledger.new_customer(19675, 0)
    table[b"mine"] = codec.encode(fresh, specs, 3)
    table[b"theirs"] = codec.encode(fresh, specs, 4)
    table[marker_key(3)] = b"{}"
    part = partition(rules, table)
    counts = part.store.load_ids(3, rules.tier_ids)
    assert list(part.store) == ["mine"] and len(part.store) == 1
    assert dict(counts.tiers) == {rules.tier_ids[0]: 1} and not counts.segments


def test_load_counts_tiers_and_segments_from_the_states_and_moves_follow(rules: Rules) -> None:
    """Counts come from the stored states (a crash before the marker loses none), then
    the engine's segment moves keep them current."""
    table: dict[bytes, bytes] = {}
    specs = partition(rules, table).store.specs
    ledger = partition(rules, table).engine.ledger
    for i, (tier, grid) in enumerate([(0, "低价值/低活跃"), (1, "低价值/低活跃"), (1, "中价值/低活跃")]):
        c = ledger.new_customer(19675, 0)
        c.tier, c.segments = tier, ["new", "R5F1M1", grid]
        table[f"c{i}".encode()] = codec.encode(c, specs, 3)
    part = partition(rules, table)
    counts = part.store.load_ids(3, rules.tier_ids)
    assert dict(counts.tiers) == {"standard": 1, "gold": 2}
    assert counts.segments[("grid", "低价值/低活跃")] == 2 and counts.segments[("lifecycle", "new")] == 3
    part.segment_counts = counts.segments
    part.engine.evaluator.segment_moves[("grid", "低价值/低活跃", "中价值/低活跃")] += 1
    part.engine.evaluator.segment_moves[("rfm", None, "R1F1M1")] += 1
    part.take_segment_moves()
    assert part.segment_counts[("grid", "低价值/低活跃")] == 1
    assert part.segment_counts[("grid", "中价值/低活跃")] == 2
    assert part.segment_counts[("rfm", "R1F1M1")] == 1
    assert not part.engine.evaluator.segment_moves  # drained


def test_customers_touched_after_a_commit_took_its_ids_go_to_the_next_one(rules: Rules) -> None:
    """A commit fixes its customers when it starts and encodes them later, while the
    merge goes on touching customers."""
    table: dict[bytes, bytes] = {}
    store = partition(rules, table).store
    ledger = partition(rules, table).engine.ledger
    store["c1"] = ledger.new_customer(19675, 0)
    taken = store.take_touched_ids()
    store["c2"] = ledger.new_customer(19675, 0)
    assert taken == ["c1"] and store.touched == {"c2"}
    assert [cid for cid, _, new in store.encode_changed(taken, 3) if new] == ["c1"]
    assert [cid for cid, _, _ in store.take_touched(3)] == ["c2"]


def test_trimming_the_cache_keeps_customers_not_yet_encoded(rules: Rules) -> None:
    table: dict[bytes, bytes] = {}
    store = partition(rules, table).store
    ledger = partition(rules, table).engine.ledger
    for cid in "abcdef":
        store[cid] = ledger.new_customer(19675, 0)
    store.encode_changed(store.take_touched_ids(), 3)
    store["a"].tier_since = 1  # changed again after the commit took its ids
    store.trim(limit=4)  # over the limit: the oldest half goes, a and b
    assert set(store.cache) == set("acdef"), "b is dropped (encoded); a waits for the next commit"
    assert [cid for cid, _, _ in store.take_touched(3)] == ["a"]
