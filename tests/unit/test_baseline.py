"""The nightly DuckDB batch (bench/baseline.py) must agree with the engine to the fen.

Two independent readings of SPEC §3-§4 (SQL over the whole file, and the engine's
incremental rings) agreeing on every customer is the check; the hand-made case pins
both to figures worked out on paper.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bench.baseline import compare, engine_figures, nightly_batch, run_engine
from tierstream.engine.rules import load_rules
from tierstream.testing.book import Book
from tierstream.tools.generate import generate_events, write_events


def _bank(path: Path, *, noise: bool = False, late: bool = False) -> Path:
    with path.open("w", encoding="utf-8") as out:
        write_events(generate_events(300, 45, seed=1, usd=False, noise=noise, late=late), out)
    return path


def test_generated_bank_agrees_on_every_customer(tmp_path: Path) -> None:
    events = _bank(tmp_path / "bank.jsonl")
    rules = load_rules("cmb")
    engine, _, _ = run_engine(events, rules)
    batch = nightly_batch(events, rules)
    ours = engine_figures(engine, batch.as_of)
    assert batch.as_of == date(2026, 2, 14)  # day 45 of a bank opened on 2026-01-01
    assert len(batch.figures) == 300
    assert ours == batch.figures
    assert batch.applied == engine.outcomes["applied"]
    # Not a trivial bank: several tiers at the end, upgrades on the way, and customers
    # whose average fell below their tier (a downgrade pending its grace days).
    assert len({tier for _, tier in batch.figures.values()}) >= 3
    assert engine.outputs["tier.changes"] > 0
    ids = rules.tier_ids
    assert any(ids.index(ours[cid][1]) < c.tier for cid, c in engine.customers.items())


def test_compare_counts_and_times(tmp_path: Path) -> None:
    result = compare(_bank(tmp_path / "bank.jsonl"))
    assert result["customers"] == 300
    assert result["avg_agree"] == result["tier_agree"] == result["customers"]
    assert result["disagreements"] == []
    assert result["as_of"] == result["engine_as_of"] == "2026-02-14"
    assert result["batch_seconds"] > 0 and result["engine_seconds"] > 0
    assert result["applied"]["engine"] == result["applied"]["batch"] == result["events"]


def test_noisy_late_bank_agrees(tmp_path: Path) -> None:
    """Redeliveries, bad records and too-late events are dropped by both, alike."""
    result = compare(_bank(tmp_path / "noisy.jsonl", noise=True, late=True))
    assert result["customers"] == 300
    assert result["avg_agree"] == result["tier_agree"] == 300, result["disagreements"]
    assert result["applied"]["engine"] == result["applied"]["batch"] < result["events"]


def test_hand_made_figures(tmp_path: Path) -> None:
    book = Book()
    # C1, seen from 2026-02-20: a deposit, a credit card (a liability), later a fund.
    book.balance("2026-02-20T10:00:00+08:00", "1000.00", "C1", "C1-D1", event_id="A1")
    book.balance("2026-02-20T10:00:00+08:00", "5000.00", "C1", "C1-K1", "credit_card", event_id="A2")
    book.balance("2026-03-10T09:00:00+08:00", "300.03", "C1", "C1-F1", "fund", event_id="A3")
    book.txn(
        "2026-03-15T12:00:00+08:00",
        "100.00",
        customer="C1",
        account="C1-D1",
        event_id="A4",
        balance_after="900.00",
    )
    book.balance("2026-03-15T18:00:00+08:00", "950.00", "C1", "C1-D1", event_id="A5")
    # earlier the same day, later in the file: the 18:00 balance still closes the day
    book.balance("2026-03-15T08:00:00+08:00", "123.45", "C1", "C1-D1", event_id="A6")
    # 17:00 UTC is 01:00 the next day in Shanghai: business day 2026-03-21
    book.balance("2026-03-20T17:00:00Z", "2000.00", "C1", "C1-D1", event_id="A7")
    # the same event id again: a duplicate, whatever it says
    book.balance("2026-03-22T10:00:00+08:00", "9999.00", "C1", "C1-D1", event_id="A7")
    # C2, first seen 2026-03-20 (a profile, a day behind the clock): an overdraft,
    # then a large deposit and a loan.
    book.profile("2026-03-20T09:00:00+08:00", "C2", segment="mass")
    book.balance("2026-03-20T10:00:00+08:00", "-0.07", "C2", "C2-D2", event_id="B2")
    book.balance("2026-03-25T11:00:00+08:00", "6000000.00", "C2", "C2-D1", event_id="B3")
    book.balance("2026-03-26T11:00:00+08:00", "800000.00", "C2", "C2-L1", "loan", event_id="B4")
    # C3, first seen on the last day, overdrawn.
    book.balance("2026-03-31T20:00:00+08:00", "-10.00", "C3", "C3-D1", event_id="C1")
    lines = book.lines
    events = tmp_path / "hand.jsonl"
    with events.open("w", encoding="utf-8") as out:
        write_events(lines, out)
    # D = 2026-03-31, the window is 2026-03-02 .. 2026-03-31 (30 days).
    # C1: D1 100000 fen x 13 days (03-02..03-14) + 95000 x 6 (03-15..03-20)
    #     + 200000 x 11 (03-21..03-31) = 4070000; F1 30003 x 22 (03-10..03-31) = 660066;
    #     K1 is a liability. 4730066 / 30 = 157668.87 -> 157668.
    # C2: 12 days seen (03-20..03-31): D2 -7 x 12 = -84; D1 600000000 x 7 (03-25..03-31)
    #     = 4200000000; L1 is a liability. 4199999916 / 30 = 139999997.2 -> 139999997
    #     (1,399,999.97: at least 500,000.00, so sunflower).
    # C3: -1000 x 1 day; -1000 / 30 = -33.33, toward negative infinity -> -34.
    expected = {
        "C1": (157668, "standard"),
        "C2": (139999997, "sunflower"),
        "C3": (-34, "standard"),
    }
    rules = load_rules("cmb")
    batch = nightly_batch(events, rules)
    assert batch.as_of == date(2026, 3, 31)
    assert batch.figures == expected
    engine, _, _ = run_engine(events, rules)
    assert engine_figures(engine, batch.as_of) == expected
    assert batch.applied == engine.outcomes["applied"] == len(lines) - 1


@pytest.mark.parametrize("preset", ["psbc", "ccb"])
def test_refuses_rules_on_other_metrics(tmp_path: Path, preset: str) -> None:
    with pytest.raises(ValueError, match="only evaluates conditions on avg_aum_30d"):
        nightly_batch(tmp_path / "unused.jsonl", load_rules(preset))
