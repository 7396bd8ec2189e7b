"""State codec: a decoded customer behaves exactly like the original, and stays small."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings

from tests.conftest import Book, make_rules
from tests.unit.test_properties import histories, ts
from tierstream.engine import codec
from tierstream.engine.partition import PartitionEngine
from tierstream.engine.rules import load_rules
from tierstream.simulate import feed_line


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
