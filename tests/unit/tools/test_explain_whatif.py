"""explain shows the facts the output events carried; whatif moves exactly who it should."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tierstream.engine.rules import load_rules, parse_rules
from tierstream.engine.timeutil import parse_instant
from tierstream.testing.book import Book
from tierstream.tools.explain import explain, replay_until
from tierstream.tools.generate import generate_events, write_events
from tierstream.tools.simulate import read_lines
from tierstream.tools.whatif import plot, run_whatif, write_csv

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

EXAMPLES = FIXTURES / "examples"
EXPECTED = [json.loads(x) for x in (EXAMPLES / "lifecycle.expected.jsonl").read_text().splitlines()]
UPGRADE, DOWNGRADE = EXPECTED[1]["value"], EXPECTED[5]["value"]


def explain_at(at: str) -> dict:
    rules = load_rules(str(EXAMPLES / "lifecycle.rules.yaml"))
    with (EXAMPLES / "lifecycle.events.jsonl").open("rb") as f:
        engine, outputs = replay_until(rules, read_lines(f), parse_instant(at), "A")
    return explain(engine, "A", outputs)


def test_explain_at_the_upgrade_shows_its_figures() -> None:
    doc = explain_at(UPGRADE["effective_at"])
    assert (doc["tier"], doc["since"]) == ("gold", UPGRADE["effective_at"])
    assert doc["metrics"]["avg_aum_30d"] == UPGRADE["metrics"]["avg_aum_30d"] == "51976.66"
    assert doc["metrics"]["aum"] == UPGRADE["metrics"]["aum"]
    gold = [c for c in doc["conditions"] if c["tier"] == "gold"]
    assert gold == [
        {
            "tier": "gold",
            "condition": "avg_aum_30d >= 50000",
            "value": "51976.66",
            "threshold": "50000.00",
            "holds": True,
        }
    ]


def test_explain_during_grace_shows_the_pending_downgrade() -> None:
    doc = explain_at("2026-02-20T12:00:00+08:00")
    assert doc["tier"] == "gold"
    # the average first fell below 50,000 on 15 February; grace is 10 days
    assert doc["pending_downgrade"] == {"below_since": "2026-02-15", "downgrade_on": "2026-02-25"}
    assert [c["holds"] for c in doc["conditions"] if c["tier"] == "gold"] == [False]


def test_explain_after_the_downgrade_lists_every_output_with_its_figures() -> None:
    doc = explain_at("2026-04-30T00:00:00+08:00")
    assert (doc["tier"], doc["since"]) == ("standard", DOWNGRADE["effective_at"])
    assert doc["pending_downgrade"] is None
    assert [{k: v for k, v in o.items() if k != "topic"} for o in doc["outputs"]] == [
        e["value"] for e in EXPECTED
    ]
    assert doc["next_tier"]["advice"] == "keep 49000.00 more for 30 days"
    assert doc["cooldowns"]["churn"]["balance_drop"] == {"last": "2026-03-06", "next_allowed": "2026-03-18"}
    (account,) = doc["accounts"]
    assert (account["account_id"], account["closing_balance"]) == ("A1", "1000.00")
    assert len(doc["series"]["aum"]["daily"]) == 31


def test_explain_at_the_downgrade_instant_matches_the_event() -> None:
    doc = explain_at(DOWNGRADE["effective_at"])
    assert doc["metrics"]["avg_aum_30d"] == DOWNGRADE["metrics"]["avg_aum_30d"] == "28486.66"
    assert doc["tier"] == "standard"


def bank_lines(customers: int = 60, days: int = 40) -> list[tuple[int, bytes]]:
    sink = io.StringIO()
    write_events(generate_events(customers, days, 4, None, noise=True, late=True, usd=False), sink)
    return list(read_lines(io.BytesIO(sink.getvalue().encode("utf-8"))))


def test_whatif_of_a_ladder_against_itself_is_the_identity(tmp_path: Path) -> None:
    cmb = load_rules("cmb")
    result = run_whatif(cmb, cmb, bank_lines(), monthly=True)
    for ta, row in result.matrix().items():
        assert all(n == 0 for tb, n in row.items() if tb != ta)
    assert sum(sum(r.values()) for r in result.matrix().values()) == len(result.final.a) > 0
    assert result.monthly and all(s.a == s.b for s in result.monthly)
    files = write_csv(result, tmp_path / "csv")
    assert [Path(f).name for f in files] == [
        "migration.csv",
        "distribution.csv",
        "customers.csv",
        "segments.csv",
    ]
    # the segment matrices are the identity too (cmb publishes all three)
    assert result.segment_names() == ["lifecycle", "rfm", "grid"]
    for name in result.segment_names():
        for va, row in result.segment_matrix(name).items():
            assert all(n == 0 for vb, n in row.items() if vb != va), name
    plot(result, tmp_path / "tiers.png")
    assert (tmp_path / "tiers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


RAISED = """
scheme: raised
version: "r1"
tiers:
  - {id: standard}
  - {id: gold, any_of: ["avg_aum_30d >= 60000"]}
  - {id: sunflower, any_of: ["avg_aum_30d >= 500000"]}
"""
BASE = RAISED.replace("60000", "50000").replace("raised", "base")


@pytest.mark.parametrize(
    "balances", [["45000.00", "50000.00", "55000.00", "59999.99", "60000.00", "70000.00"]]
)
def test_a_raised_threshold_moves_exactly_the_customers_in_the_gap(balances: list[str]) -> None:
    book = Book()
    for i, amount in enumerate(balances):
        book.balance("2026-01-01T10:00:00+08:00", amount, customer=f"K{i}", account=f"K{i}-1")
    book.balance("2026-03-01T10:00:00+08:00", "1.00", customer="Z", account="Z1")  # moves the clock
    lines = list(enumerate(book.encoded()))
    result = run_whatif(parse_rules(BASE), parse_rules(RAISED), lines)
    moved = {cid for cid in result.final.a if result.final.a[cid] != result.final.b[cid]}
    # constant balances: the 30-day average equals the balance; the gap is [50,000, 60,000)
    assert moved == {"K1", "K2", "K3"}
    assert all((result.final.a[c], result.final.b[c]) == ("gold", "standard") for c in moved)
    assert result.movement()["gold"] == {"up": 0, "down": 3, "unchanged": 2}


def test_explain_a_generated_customer_upgraded_then_downgraded_after_grace() -> None:
    from tierstream.engine.evaluate import TIER_CHANGES
    from tierstream.testing.book import make_rules

    rules = make_rules(grace=5)
    lines = bank_lines(customers=120, days=75)
    engine, outputs = replay_until(rules, lines, None)
    changes: dict[str, list[dict]] = {}
    for topic, cid, value in outputs:
        if topic == TIER_CHANGES:
            changes.setdefault(cid, []).append(value)
    # a customer whose last move is a downgrade that followed an upgrade
    cid, moves = next(
        (c, m)
        for c, m in sorted(changes.items())
        if len(m) >= 2 and m[-1]["direction"] == "downgrade" and m[-2]["direction"] == "upgrade"
    )
    up, down = moves[-2], moves[-1]
    final = explain(engine, cid, [o for o in outputs if o[1] == cid])
    assert (final["tier"], final["since"]) == (down["to_tier"], down["effective_at"])
    tier_events = [o for o in final["outputs"] if o["type"] == "tier_changed"]
    assert tier_events[-2:] == [
        {"topic": "tier.changes", **{k: v for k, v in e.items() if k != "emitted_at"}} for e in (up, down)
    ]
    # as of the downgrade instant: the tier, and the figures the event carried
    at_down = explain(*replay_until(rules, lines, parse_instant(down["effective_at"]), cid)[:1], cid, [])
    assert at_down["tier"] == down["to_tier"]
    assert {k: at_down["metrics"][k] for k in down["metrics"]} == down["metrics"]
    # just before it: still the higher tier, with the downgrade pending for that very day
    day_before = explain(
        *replay_until(rules, lines, parse_instant(down["effective_at"]) - 1, cid)[:1], cid, []
    )
    assert day_before["tier"] == down["from_tier"]
    assert day_before["pending_downgrade"]["downgrade_on"] == down["effective_at"][:10]


def test_explain_at_midday_is_as_of_that_instant() -> None:
    rules = load_rules(str(EXAMPLES / "lifecycle.rules.yaml"))
    with (EXAMPLES / "lifecycle.events.jsonl").open("rb") as f:
        at = parse_instant("2026-02-20T12:00:00+08:00")
        engine, outputs = replay_until(rules, read_lines(f), at, "A")
    assert explain(engine, "A", outputs, at)["as_of"] == "2026-02-20T12:00:00+08:00"


def test_whatif_customers_csv_has_the_metrics_and_each_ladders_gap(tmp_path: Path) -> None:
    book = Book()
    for i, amount in enumerate(["45000.00", "55000.00"]):
        book.balance("2026-01-01T10:00:00+08:00", amount, customer=f"K{i}", account=f"K{i}-1")
    book.balance("2026-03-01T10:00:00+08:00", "1.00", customer="Z", account="Z1")
    result = run_whatif(parse_rules(BASE), parse_rules(RAISED), list(enumerate(book.encoded())))
    write_csv(result, tmp_path)
    rows = (tmp_path / "customers.csv").read_text().splitlines()
    assert rows[0] == "customer_id,tier_a,tier_b,aum,avg_aum_30d,next_tier_a,gap_a,next_tier_b,gap_b"
    assert rows[2] == "K1,gold,standard,55000.00,55000.00,sunflower,445000.00,gold,5000.00"


def test_whatif_names_how_many_more_moved_than_it_lists(tmp_path: Path) -> None:
    import subprocess
    import sys

    book = Book()
    for i in range(5):
        book.balance("2026-01-01T10:00:00+08:00", "55000.00", customer=f"K{i}", account=f"K{i}-1")
    book.balance("2026-03-01T10:00:00+08:00", "1.00", customer="Z", account="Z1")
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(book.encoded()) + b"\n")
    (tmp_path / "a.yaml").write_text(BASE)
    (tmp_path / "b.yaml").write_text(RAISED)
    args = [
        "whatif",
        "--events",
        str(events),
        "--rules",
        str(tmp_path / "a.yaml"),
        "--rules",
        str(tmp_path / "b.yaml"),
    ]
    result = subprocess.run(
        [sys.executable, "-m", "tierstream.cli", *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "gold → standard: K0, K1, K2 (+2 more; --csv DIR lists all)" in result.stdout


def test_whatif_before_any_event_is_refused(tmp_path: Path) -> None:
    import subprocess
    import sys

    args = [
        "whatif",
        "--events",
        str(EXAMPLES / "lifecycle.events.jsonl"),
        "--rules",
        "cmb",
        "--rules",
        "cmb",
        "--at",
        "2020-01-01T00:00:00+08:00",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "tierstream.cli", *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "no applied event at or before --at" in result.stderr


WITH_GRID = (
    BASE
    + """
segments:
  grid:
    value:    {metric: avg_aum_30d, bands: [50000], names: [low, high]}
    activity: {metric: txn_count_30d, bands: [100], names: [quiet, busy]}
"""
)


def test_a_raised_grid_band_moves_exactly_the_customers_in_the_gap() -> None:
    book = Book()
    for i, amount in enumerate(["45000.00", "50000.00", "59999.99", "60000.00"]):
        book.balance("2026-01-01T10:00:00+08:00", amount, customer=f"K{i}", account=f"K{i}-1")
    book.balance("2026-03-01T10:00:00+08:00", "1.00", customer="Z", account="Z1")
    lines = list(enumerate(book.encoded()))
    raised = WITH_GRID.replace("bands: [50000]", "bands: [60000]")
    result = run_whatif(parse_rules(WITH_GRID), parse_rules(raised), lines)
    assert result.segment_names() == ["lifecycle", "grid"]  # rfm published by neither
    assert result.segment_matrix("grid") == {
        "∅": {"∅": 1, "low/quiet": 0, "high/quiet": 0},  # Z: first seen on the last day
        "low/quiet": {"∅": 0, "low/quiet": 1, "high/quiet": 0},
        "high/quiet": {"∅": 0, "low/quiet": 2, "high/quiet": 1},
    }


def test_explain_shows_each_segment_with_its_dimensions() -> None:
    rules = load_rules("cmb")
    engine, outputs = replay_until(rules, bank_lines(), None)
    cid = next(iter(engine.customers))
    doc = explain(engine, cid, outputs)
    assert list(doc["segments"]) == ["lifecycle", "rfm", "grid"]
    rfm = doc["segments"]["rfm"]
    scores = [d["score"] for d in rfm["dimensions"]]
    assert rfm["now"] == "R{}F{}M{}".format(*scores)  # the scores shown are today's
    assert rfm["value"] == engine.customers[cid].segments[1]  # type: ignore[index]  # as last published
    assert [d["role"] for d in rfm["dimensions"]] == ["recency", "frequency", "monetary"]
    assert doc["segments"]["grid"]["dimensions"][0]["metric"] == "avg_aum_30d"
