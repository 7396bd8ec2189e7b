"""The customers table of one partition and its marker, over a dict (no Faust)."""

from __future__ import annotations

import io
from collections import deque

import pytest

from tierstream.contract import marker_key
from tierstream.engine import codec
from tierstream.engine.evaluate import Output, series_specs
from tierstream.engine.partition import PartitionEngine
from tierstream.engine.rules import Rules, load_rules
from tierstream.tools.generate import generate_events, write_events
from tierstream.tools.simulate import feed_line
from tierstream.worker import store as store_module
from tierstream.worker.store import (
    CustomerStore,
    Partition,
    ShapeMismatch,
    load_marker,
    marker_of,
    share_decoded,
)

TOPICS = {"t.balances": 0, "t.transactions": 1, "t.profiles": 2}


@pytest.fixture
def rules() -> Rules:
    return load_rules("cmb")


def partition(rules: Rules, table: dict[bytes, bytes], number: int = 3) -> Partition:
    engine = PartitionEngine(rules, eager=False)
    store = CustomerStore(table, engine.ledger.specs, partition=number)
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


def test_the_partitions_customers_are_read_from_the_table_without_markers(rules: Rules) -> None:
    table: dict[bytes, bytes] = {}
    specs = partition(rules, table).store.specs
    fresh = partition(rules, table).engine.ledger.new_customer(19675, 0)
    table[b"mine"] = codec.encode(fresh, specs, 3)
    table[b"theirs"] = codec.encode(fresh, specs, 4)
    table[marker_key(3)] = b"{}"
    part = partition(rules, table)
    counts = part.store.count_stored(3, rules.tier_ids)
    assert list(part.store) == ["mine"] and len(part.store) == 1
    assert dict(counts.tiers) == {rules.tier_ids[0]: 1} and not counts.segments
    part.store["made"] = part.engine.ledger.new_customer(19675, 0)  # not written yet
    part.store.limit = 0
    part.store.trim(spill=True)  # spilled: in neither the cache nor the table
    part.store["also"] = part.engine.ledger.new_customer(19675, 0)  # decoded
    assert part.store.customer_ids() == ["also", "made", "mine"]


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
    counts = part.store.count_stored(3, rules.tier_ids)
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


def test_trimming_keeps_customers_a_commit_took_until_it_has_encoded_and_served_them(rules: Rules) -> None:
    """A commit encodes in slices while the merge and sweeps go on (and trim)."""
    table: dict[bytes, bytes] = {}
    store = partition(rules, table).store
    ledger = partition(rules, table).engine.ledger
    for cid in "abcdef":
        store[cid] = ledger.new_customer(19675, 0)
    taken = store.take_touched_ids()
    store.limit = 2
    store.trim()  # mid-commit: nothing taken is dropped
    assert set(store.cache) == set("abcdef")
    store.encode_changed(taken, 3)
    store["a"].tier_since = 1  # changed again after the commit took its ids
    store.finish_encoding()
    assert set(store.cache) == {"a", "f"}, "a waits for the next commit; the oldest others go"
    assert [cid for cid, _, _ in store.take_touched(3)] == ["a"]


def test_a_commit_lets_go_of_each_slice_once_it_is_in_the_table(rules: Rules) -> None:
    """`encoded`: a slice written to the table may be dropped while later slices are
    encoded; read again, the customer is its new state from the table."""
    table: dict[bytes, bytes] = {}
    part = partition(rules, table)
    store, ledger = part.store, part.engine.ledger
    for cid in "abcd":
        store[cid] = ledger.new_customer(19675, 0)
        store[cid].tier_since = 7
    taken = store.take_touched_ids()
    store.limit = 1
    first = taken[:2]
    for cid, blob, _ in store.encode_changed(first, 3):
        table[cid.encode()] = blob  # the caller writes the slice to the table
    store.encoded(first)
    store.trim(spill=True)
    assert set(store.cache) == set(taken[2:]), "the slice in the table went; the rest wait for their slice"
    assert store[first[0]].tier_since == 7  # read back from the table: the state just encoded
    store.encode_changed(taken[2:], 3)
    store.finish_encoding()
    assert len(store.cache) == 1


def test_finishing_a_commit_spills_what_changed_meanwhile_past_the_limit(rules: Rules) -> None:
    table: dict[bytes, bytes] = {}
    part = partition(rules, table)
    store, ledger = part.store, part.engine.ledger
    store["a"] = ledger.new_customer(19675, 0)
    taken = store.take_touched_ids()
    for cid in "bcd":  # changed while the commit encodes: touched, not taken
        store[cid] = ledger.new_customer(19675, 0)
    store.limit = 1
    store.encode_changed(taken, 3)
    store.finish_encoding()
    assert len(store.cache) == 1 and len(store.spilled) == 2 and store.spills == 2
    written = {cid for cid, _, _ in store.take_touched(3)}
    assert written == set("bcd"), "spilled or decoded, each is written by the next commit"


def test_stored_is_the_latest_state_that_is_not_decoded(rules: Rules) -> None:
    table: dict[bytes, bytes] = {}
    part = partition(rules, table)
    store, ledger = part.store, part.engine.ledger
    table[b"t"] = codec.encode(ledger.new_customer(19675, 0), store.specs, 3)
    store["s"] = ledger.new_customer(19675, 0)
    store.limit = 0
    store.trim(spill=True)
    assert store.stored("t") == table[b"t"]
    assert store.stored("s") == store.spilled["s"].state
    store.take_touched_ids()  # the commit takes `s`: being written, not in the table yet
    assert store.stored("s") == store.writing["s"].state
    assert store.stored("nobody") is None


def _bank(customers: int, days: int) -> list[bytes]:
    text = io.StringIO()
    write_events(generate_events(customers, days, seed=3, usd=False), text)
    return text.getvalue().encode("utf-8").splitlines()


def _run(
    rules: Rules, lines: list[bytes], limit: int
) -> tuple[list[Output], dict[bytes, bytes], CustomerStore, int]:
    """The worker's cycle over a dict table: records, a sweep when the day moves, a commit
    every 40 records (changed states written, the cache trimmed). Also returns how many
    written states were spilled ones (not decoded when their commit took them)."""
    table: dict[bytes, bytes] = {}
    engine = PartitionEngine(rules, eager=False)
    store = CustomerStore(table, engine.ledger.specs, limit=limit)
    engine.customers = store
    outputs: list[Output] = []
    spilled = 0

    def commit() -> None:
        nonlocal spilled
        for cid, blob, _ in store.take_touched(0):
            table[cid.encode()] = blob
            spilled += cid not in store.cache  # the worker serves these from `blob`

    for number, line in enumerate(lines):
        day_before = engine.clock_day
        outputs += feed_line(engine, number, line)
        if day_before is not None and engine.clock_day != day_before:
            swept: list[Output] = []
            store.sweep(engine, swept)
            outputs += swept
        if number % 40 == 39:
            commit()
    commit()
    return outputs, table, store, spilled


def test_a_small_decoded_cache_gives_the_same_outputs_and_states(
    rules: Rules, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Customers dropped from the cache (after commits and between a sweep's slices) are
    read back from the table, and changed ones past the limit are spilled (encoded before
    their commit) and read back from that: nothing a touched customer changed is lost."""
    lines = _bank(40, 4)
    everything, table, _, none_spilled = _run(rules, lines, limit=10**6)
    monkeypatch.setattr(store_module, "SWEEP_SLICE", 3)
    bounded, bounded_table, store, spilled = _run(rules, lines, limit=4)
    assert len(everything) > 100
    assert none_spilled == 0 and spilled > 20
    assert bounded == everything
    assert bounded_table == table
    store.take_touched(0)  # the last commit's changed customers go at the next trim
    assert len(store.cache) <= 4 < len(store)


def test_trim_drops_the_oldest_untouched_customers(rules: Rules) -> None:
    table: dict[bytes, bytes] = {}
    part = partition(rules, table)
    store, ledger = part.store, part.engine.ledger
    for cid in ("a", "b", "c", "d"):
        table[cid.encode()] = codec.encode(ledger.new_customer(19675, 0), store.specs, 3)
        _ = store[cid]
    store.take_touched(3)
    _ = store["a"]  # touched again: kept however old
    store.limit = 2
    store.trim()
    assert list(store.cache) == ["a", "d"] and set(store.loaded) == {"a", "d"}
    assert store["b"].tier == 0  # read back from the table


def test_the_decoded_budget_is_shared_among_the_partitions(rules: Rules) -> None:
    stores = [partition(rules, {}, n).store for n in range(3)]
    share_decoded(stores, 50_000)
    assert [s.limit for s in stores] == [16_666] * 3
    share_decoded(stores[:1], 50_000)
    assert stores[0].limit == 50_000


def test_changed_customers_past_the_limit_are_spilled_and_written_by_the_next_commit(rules: Rules) -> None:
    table: dict[bytes, bytes] = {}
    part = partition(rules, table)
    store, ledger = part.store, part.engine.ledger
    table[b"old"] = codec.encode(ledger.new_customer(19675, 0), store.specs, 3)
    store["old"].tier_since = 5  # a stored customer, changed
    store["new"] = ledger.new_customer(19675, 0)  # never written
    store.limit = 0
    store.trim()
    assert set(store.cache) == {"old", "new"}, "outside a sweep changed customers stay decoded"
    store.trim(spill=True)
    assert not store.cache and set(store.spilled) == {"old", "new"} and not store.touched
    assert store["new"].tier == 0  # read back from its spilled state, not the table
    assert "new" not in store.spilled and "new" in store.touched
    store.trim(spill=True)
    written = {cid: new for cid, _, new in store.take_touched(3)}
    assert written == {"old": False, "new": True}, "written once each; `new` survives a spill"
    assert codec.decode(table[b"old"], store.specs).tier_since != 5, "the table is the caller's to write"


def test_a_spilled_customer_is_read_from_the_commit_in_flight_until_it_is_in_the_table(rules: Rules) -> None:
    table: dict[bytes, bytes] = {}
    part = partition(rules, table)
    store, ledger = part.store, part.engine.ledger
    store["a"] = ledger.new_customer(19675, 0)
    store["a"].tier_since = 7
    store.limit = 0
    store.trim(spill=True)
    taken = store.take_touched_ids()
    assert taken == ["a"] and not store.spilled and "a" in store.writing
    assert store["a"].tier_since == 7, "not in the table yet: read from the commit's state"
    changed = store.encode_changed(taken, 3)
    assert [(cid, new) for cid, _, new in changed] == [("a", True)]
    table[b"a"] = changed[0][1]
    store.finish_encoding()
    assert not store.writing
