"""State codec: a decoded customer behaves exactly like the original, and stays small."""

from __future__ import annotations

from array import array
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard
from hypothesis import given, settings

from tierstream.engine import codec
from tierstream.engine.evaluate import series_specs
from tierstream.engine.partition import PartitionEngine
from tierstream.engine.rules import load_rules, parse_rules
from tierstream.testing.book import Book, make_rules
from tierstream.testing.strategies import histories, ts
from tierstream.tools.simulate import feed_line


@settings(max_examples=40, deadline=None)
@given(histories(), histories())
def test_round_trip_mid_stream_changes_nothing(first: list[bytes], second: list[bytes]) -> None:
    rules = make_rules(grace=2)
    straight, restored = PartitionEngine(rules), PartitionEngine(rules)
    out_a: list[Any] = []
    out_b: list[Any] = []
    for i, line in enumerate(first):
        out_a += feed_line(straight, i, line)
        out_b += feed_line(restored, i, line)
    specs = restored.ledger.specs
    for cid in list(restored.customers):
        blob = codec.encode(restored.customers[cid], specs)
        restored.customers[cid] = codec.decode(blob, specs)
        assert codec.encode(restored.customers[cid], specs) == blob
    for i, line in enumerate(second):
        out_a += feed_line(straight, i, line)
        out_b += feed_line(restored, i, line)
    assert out_a == out_b


@settings(max_examples=40, deadline=None)
@given(histories())
def test_the_rings_are_written_as_each_series_reads_them(lines: list[bytes]) -> None:
    """`series_days` (every ring read at once, for speed) gives what `ring_days` and
    `series` give one series at a time: states are written byte for byte as before."""
    engine = PartitionEngine(make_rules(grace=2))
    for i, line in enumerate(lines):
        feed_line(engine, i, line)
    for c in engine.customers.values():
        literal = [(c.ring_days(i), s.sums) for i, s in enumerate(c.series)]
        assert c.series_days() == literal
        c.add_to_ring(0, 2**70)  # past every array width: the rings become a list
        assert not isinstance(c.rings, array)
        assert c.series_days() == [(c.ring_days(i), s.sums) for i, s in enumerate(c.series)]


def test_state_bytes_per_customer_stay_small() -> None:
    """A customer with four accounts, daily activity and a profile, after 400 days."""
    for preset, limit in (("cmb", 1500), ("ccb", 4096)):
        engine = PartitionEngine(load_rules(preset))
        book = Book()
        for day in range(400):
            (
                book.balance(ts(day, 3600), f"{100000 + day * 13}.00", account="A1")
                .balance(ts(day, 3700), f"{250000 - day * 7}.00", account="A2", product="loan")
                .balance(ts(day, 3800), f"{30000 + day % 5}.00", account="A3", product="wealth")
                .txn(ts(day, 7200), "12.00", channel="pos", account="A4", balance_after=f"{day}.00")
                .txn(ts(day, 7300), "800.00", channel="transfer", counterparty_bank="ICBC")
            )
            if day % 30 == 0:
                book.profile(ts(day, 100), segment="mass", household_income=150000, high_end_card=False)
        for i, line in enumerate(book.encoded()):
            feed_line(engine, i, line)
        assert engine.outcomes["applied"] == len(book.lines)
        size = len(codec.encode(engine.customers["A"], engine.ledger.specs))
        print(f"{preset}: {size} bytes of state")
        assert size <= limit, (preset, size)


def test_states_written_as_zlib_before_zstd_still_read() -> None:
    """Tables and changelogs written before decision 121 hold zlib streams."""
    import zlib

    engine = PartitionEngine(load_rules("cmb"))
    book = (
        Book().balance(ts(0, 3600), "60000.00").txn(ts(1, 7200), "10.00").profile(ts(2, 100), segment="mass")
    )
    for i, line in enumerate(book.encoded()):
        feed_line(engine, i, line)
    specs = engine.ledger.specs
    blob = codec.encode(engine.customers["A"], specs, 5)
    assert blob[2] != codec.ZLIB_FIRST_BYTE, "written as zstd"
    doc = codec.unpack(blob)
    old = (5).to_bytes(2, "big") + zlib.compress(orjson.dumps(doc), 1)
    assert old[2] == codec.ZLIB_FIRST_BYTE
    assert codec.partition_of(old) == 5
    assert codec.encode(codec.decode(old, specs), specs, 5) == blob


def _one_customer() -> tuple[PartitionEngine, Any]:
    engine = PartitionEngine(load_rules("cmb"))
    book = (
        Book().balance(ts(0, 3600), "60000.00").txn(ts(1, 7200), "10.00").profile(ts(2, 100), segment="mass")
    )
    for i, line in enumerate(book.encoded()):
        feed_line(engine, i, line)
    return engine, engine.customers["A"]


#: sha256 of the dictionary states are written with: states live as long as the bank's
#: changelog, so the file is never changed (a better one is a new id beside it)
SHIPPED = {0x74530001: "da7c468eee13320928fc2a41db9a04b197787db77a598c568219a728aeb011af"}


def test_the_shipped_dictionaries_are_the_ones_states_were_written_with() -> None:
    import hashlib
    from importlib import resources

    assert set(codec.DICTIONARIES) == set(SHIPPED) and codec.DICTIONARY_ID in SHIPPED
    for dict_id, digest in SHIPPED.items():
        data = resources.files("tierstream.engine").joinpath(f"state-{dict_id:08x}.zdict").read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, f"state-{dict_id:08x}.zdict changed"
        assert zstandard.ZstdCompressionDict(data).dict_id() == dict_id


def test_states_name_their_dictionary_and_those_written_without_one_still_read() -> None:
    """States written between decisions 121 and 138 are zstd frames without a dictionary."""
    engine, customer = _one_customer()
    specs = engine.ledger.specs
    blob = codec.encode(customer, specs, 5)
    assert zstandard.get_frame_parameters(blob[2:]).dict_id == codec.DICTIONARY_ID
    doc = orjson.dumps(codec.document(customer))
    before = (5).to_bytes(2, "big") + zstandard.ZstdCompressor(level=3).compress(doc)
    assert zstandard.get_frame_parameters(before[2:]).dict_id == 0
    assert len(blob) < len(before) * 0.8, "the dictionary pays for itself"
    assert codec.encode(codec.decode(before, specs), specs, 5) == blob


def test_a_state_compressed_with_an_unknown_dictionary_says_a_newer_tierstream_wrote_it() -> None:
    engine, customer = _one_customer()
    doc = orjson.dumps(codec.document(customer))
    other = zstandard.train_dictionary(2048, [doc + str(i).encode() for i in range(200)], dict_id=0x74530999)
    newer = (5).to_bytes(2, "big") + zstandard.ZstdCompressor(level=3, dict_data=other).compress(doc)
    with pytest.raises(ValueError, match=r"dictionary 0x74530999.*newer tierstream"):
        codec.decode(newer, engine.ledger.specs)


def test_format_3_states_read_as_the_same_customer() -> None:
    """Format 3 held observations per account and seen fingerprints as pairs; format 4
    holds both as the customer does (columns)."""
    engine = PartitionEngine(load_rules("cmb"))
    book = Book()
    for day in range(12):
        book.balance(ts(day, 3600), f"{1000 + day}.00", account="A1").txn(ts(day, 7200), "5.00", account="A2")
        book.balance(ts(day, 3700), f"{50 * day}.00", account="L1", product="loan")
    for i, line in enumerate(book.encoded()):
        feed_line(engine, i, line)
    c, specs = engine.customers["A"], engine.ledger.specs
    blob = codec.encode(c, specs, 2)
    doc = codec.unpack(blob)
    assert doc[0] == codec.FORMAT == 4
    format_3 = [
        3,
        *doc[1:9],
        [[a, o] for a, o in c.accounts.items()],
        *doc[10:14],
        [list(p) for p in c.seen.items()],
    ]
    format_3 += doc[15:]
    assert len(format_3[9]) == 2 and len(format_3[14]) > 0  # two accounts (A1, the loan)
    assert codec.encode(codec.decode(codec.pack(format_3, 2), specs), specs, 2) == blob


def test_a_state_whose_observations_do_not_fit_together_is_refused() -> None:
    engine = PartitionEngine(load_rules("cmb"))
    book = Book().balance(ts(0, 3600), "10.00", account="A1").balance(ts(0, 3700), "20.00", account="A2")
    for i, line in enumerate(book.encoded()):
        feed_line(engine, i, line)
    specs = engine.ledger.specs
    doc = codec.unpack(codec.encode(engine.customers["A"], specs))
    accounts, records, ids = doc[9]
    for broken in (
        [accounts, records[:-1], ids],  # a record short of an integer
        [accounts, records, ids + "\nextra"],  # an event id too many
        [accounts[:1], records, ids],  # a record of an account not held
        [accounts, records[3:] + records[:3], ids],  # keys out of order
    ):
        bad = [*doc[:9], broken, *doc[10:]]
        with pytest.raises(ValueError):
            codec.decode(codec.pack(bad, 0), specs)


def _shape(text: str) -> dict[str, Any]:
    rules = parse_rules(text, "test.yaml")
    return codec.state_shape(rules.tier_ids, series_specs(rules))


CMB_TEXT = (Path(__file__).parents[3] / "streams" / "presets" / "cmb.yaml").read_text(encoding="utf-8")


def test_a_threshold_change_keeps_the_state_shape() -> None:
    changed = CMB_TEXT.replace("avg_aum_30d >= 50000", "avg_aum_30d >= 60000")
    assert changed != CMB_TEXT
    assert codec.shape_mismatch(_shape(CMB_TEXT), _shape(changed)) is None


def test_an_inserted_tier_changes_the_shape_and_says_how() -> None:
    changed = CMB_TEXT.replace(
        "  - {id: gold,", '  - {id: silver, label: 银卡, any_of: ["avg_aum_30d >= 20000"]}\n  - {id: gold,'
    )
    why = codec.shape_mismatch(_shape(CMB_TEXT), _shape(changed))
    assert why is not None and "'silver'" in why and why.startswith("tiers ")


def test_a_new_window_or_lateness_changes_the_rings() -> None:
    wider = CMB_TEXT.replace('"avg_aum_30d >= 10000000"', '"avg_aum_90d >= 10000000"')
    why = codec.shape_mismatch(_shape(CMB_TEXT), _shape(wider))
    assert why is not None and "aum 90 days" in why
    later = CMB_TEXT.replace("max_lateness_days: 7", "max_lateness_days: 40")
    why = codec.shape_mismatch(_shape(CMB_TEXT), _shape(later))
    assert why is not None and "day series" in why


def test_the_shape_survives_the_marker_json() -> None:
    shape = _shape(CMB_TEXT)
    assert codec.shape_mismatch(orjson.loads(orjson.dumps(shape)), shape) is None
