"""SPEC §10 segments: the rules section, band scoring, the day-boundary step and its state."""

from __future__ import annotations

import hashlib
import textwrap
from decimal import Decimal
from typing import Any

import pytest

from tierstream.engine import codec
from tierstream.engine.rules import Dimension, RulesError, parse_metric, parse_rules
from tierstream.testing.book import BASE_RULES, Book, run

PARAMS = {"grace": 10, "opp_cooldown": 30, "dormant": 30, "churn_cooldown": 30, "lateness": 7}
SEGMENTS = """
segments:
  lifecycle: {new_days: 10}
  rfm:
    recency:   {metric: inactive_days, bands: [7, 30, 90, 180]}
    frequency: {metric: txn_count_30d, bands: [2, 6]}
    monetary:  {metric: avg_aum_30d,   bands: [10000, 50000]}
  grid:
    value:    {metric: aum,           bands: [50000, 500000], names: [低价值, 中价值, 高价值]}
    activity: {metric: txn_count_30d, bands: [4, 15]}
"""


def rules_with(segments: str = SEGMENTS, **params: Any) -> Any:
    return parse_rules(BASE_RULES % {**PARAMS, **params} + textwrap.dedent(segments), "seg.yaml")


def day(n: int, hour: str = "10:00:00") -> str:
    from datetime import date, timedelta

    return f"{(date(2026, 1, 1) + timedelta(days=n - 1)).isoformat()}T{hour}+08:00"


def changes(outputs: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [v for topic, v in outputs if topic == "customer.segment-changes"]


# ---------------------------------------------------------------- scoring


def dim(metric: str, *bands: Any) -> Dimension:
    m = parse_metric(metric)
    return Dimension("x", m, bands, tuple(str(i) for i in range(1, len(bands) + 2)))


@pytest.mark.parametrize(
    ("value", "score"),
    [(0, 1), (999_999, 1), (1_000_000, 2), (1_000_001, 2), (4_999_999, 2), (5_000_000, 3), (10**12, 3)],
)
def test_more_is_better_counts_the_bands_reached(value: int, score: int) -> None:
    assert dim("avg_aum_30d", 1_000_000, 5_000_000).score(value) == score


@pytest.mark.parametrize(
    ("inactive", "score"),
    [(0, 5), (6, 5), (7, 4), (29, 4), (30, 3), (89, 3), (90, 2), (179, 2), (180, 1), (10_000, 1)],
)
def test_inactive_days_is_reversed_less_is_better(inactive: int, score: int) -> None:
    assert dim("inactive_days", 7, 30, 90, 180).score(inactive) == score


def test_decimal_band_edges_compare_exactly() -> None:
    d = dim("txn_count_30d", Decimal("2.5"))
    assert (d.score(2), d.score(3)) == (1, 2)


@pytest.mark.parametrize(("score", "edges"), [(1, (None, 10)), (2, (10, 20)), (3, (20, None))])
def test_band_edges_around_a_score(score: int, edges: tuple[Any, Any]) -> None:
    assert dim("txn_count_30d", 10, 20).band_edges(score) == edges
    # reversed: score 3 is below the first edge
    assert dim("inactive_days", 10, 20).band_edges(4 - score) == edges


# ---------------------------------------------------------------- the rules section


def test_the_section_loads_with_money_in_fen_and_default_names() -> None:
    seg = rules_with().segments
    assert seg is not None and seg.names == ("lifecycle", "rfm", "grid")
    assert seg.new_days == 10
    assert seg.rfm is not None and seg.rfm[2].bands == (1_000_000, 5_000_000)  # yuan -> fen
    assert seg.grid is not None and seg.grid[1].names == ("low", "mid", "high")
    assert seg.grid[0].names == ("低价值", "中价值", "高价值")
    assert seg.possible("grid", "高价值/mid") and not seg.possible("grid", "高价值/top")
    assert seg.possible("rfm", "R5F3M1") and not seg.possible("rfm", "R6F1M1")


def test_each_part_is_optional_and_no_section_publishes_nothing() -> None:
    assert rules_with("segments:\n  lifecycle:\n").published_segments() == ("lifecycle",)
    assert rules_with("segments:\n  lifecycle:\n").segments.new_days == 90
    assert parse_rules(BASE_RULES % PARAMS).published_segments() == ()


@pytest.mark.parametrize(
    ("section", "line", "words"),
    [
        ("  grid:\n    value: {metric: aum, bands: [5, 5]}\n    activity: {metric: txn_count_30d, bands: [1]}\n",
         3, "strictly ascending"),
        ("  grid:\n    value: {metric: aum, bands: [9, 5]}\n    activity: {metric: txn_count_30d, bands: [1]}\n",
         3, "sort the edges"),
        ("  grid:\n    value: {metric: attr.vip, bands: [1]}\n    activity: {metric: txn_count_30d, bands: [1]}\n",
         3, "not numeric"),
        ("  grid:\n    value: {metric: aum, bands: [1, 2], names: [a, b]}\n"
         "    activity: {metric: txn_count_30d, bands: [1]}\n", 3, "needs 3 names"),
        ("  grid:\n    value: {metric: aum, bands: [1]}\n", 3, "needs value, activity"),
        ("  rfm:\n    recency: {metric: inactive_days, bands: []}\n", 3, "at least one edge"),
        ("  rfm:\n    recency: {metric: inactive_dayz, bands: [1]}\n", 3, "unknown metric"),
        ("  grid:\n    value: {metric: aum, bands: [0.001]}\n    activity: {metric: txn_count_30d, bands: [1]}\n",
         3, "whole fen"),
        ("  grid:\n    value: {metric: aum, bands: [1], names: [a, a]}\n"
         "    activity: {metric: txn_count_30d, bands: [1]}\n", 3, "must differ"),
        ("  lifecycle: {new_days: 0}\n", 2, "new_days"),
    ],
)  # fmt: skip
def test_refusals_name_the_file_the_line_and_the_fix(section: str, line: int, words: str) -> None:
    text = BASE_RULES % PARAMS
    offset = text.count("\n") + 1
    with pytest.raises(RulesError) as err:
        parse_rules(text + "segments:\n" + section, "seg.yaml")
    assert err.value.source == "seg.yaml"
    assert err.value.line == offset + line - 1, str(err.value)
    assert words in str(err.value)


# ---------------------------------------------------------------- when and what is published


def test_first_boundary_sets_every_segment_from_null_in_order() -> None:
    book = Book().balance(day(1), "60000.00").txn(day(1), "10.00")
    outputs, _ = run(rules_with(), book.encoded(), until=day(2, "00:00:00"))
    first = changes(outputs)
    v = first[1]
    # one transaction (F1), inactive 1 day (R5), average (60,000 x 2) / 30 = 4,000 (M1)
    assert v["metrics"] == {
        "aum": "60000.00",
        "inactive_days": 1,
        "txn_count_30d": 1,
        "avg_aum_30d": "4000.00",
    }
    assert [(x["segment"], x["from"], x["to"]) for x in first] == [
        ("lifecycle", None, "new"),
        ("rfm", None, "R5F1M1"),
        ("grid", None, "中价值/low"),
    ]
    assert first[0]["metrics"] == {"aum": "60000.00", "inactive_days": 1}
    assert first[2]["metrics"] == {"aum": "60000.00", "txn_count_30d": 1}
    assert all(x["effective_at"] == "2026-01-02T00:00:00+08:00" for x in first)
    # id fields segment|from|to, an empty string for a null from (SPEC §10)
    text = "segment_changed|A|lifecycle||new|2026-01-02T00:00:00+08:00|t1"
    assert first[0]["event_id"] == hashlib.sha256(text.encode()).hexdigest()[:32]


def test_no_segment_output_during_the_day_and_at_most_one_change_a_day() -> None:
    book = Book().balance(day(1), "60000.00")
    for hour in ("11", "12", "13", "14", "15"):  # the grid's activity moves within day 2
        book.txn(day(2, f"{hour}:00:00"), "10.00")
    outputs, _ = run(rules_with(), book.encoded())
    assert all(v["effective_at"].endswith("T00:00:00+08:00") for v in changes(outputs))
    outputs, _ = run(rules_with(), book.encoded(), until=day(3, "00:00:00"))
    grid = [v for v in changes(outputs) if v["segment"] == "grid"]
    assert [(v["from"], v["to"]) for v in grid] == [(None, "中价值/low"), ("中价值/low", "中价值/mid")]


def test_lifecycle_precedence_dormant_over_churn_risk_over_new() -> None:
    rules = rules_with(dormant=5)
    book = Book().balance(day(1), "600000.00").txn(day(1), "10.00").balance(day(3), "10.00")
    outputs, _ = run(rules, book.encoded(), until=day(12, "00:00:00"))
    life = [(v["effective_at"][:10], v["to"]) for v in changes(outputs) if v["segment"] == "lifecycle"]
    # new on day 2; the balance drop on day 3 makes it churn_risk at day 4's boundary; dormant
    # (5 days without activity) at day 6 wins over churn_risk; new_days 10 has passed by then
    assert life == [("2026-01-02", "new"), ("2026-01-04", "churn_risk"), ("2026-01-06", "dormant")]
    book.txn(day(12), "10.00")  # activity ends both the dormant spell and the churn risk
    outputs, _ = run(rules, book.encoded(), until=day(13, "00:00:00"))
    assert [v["to"] for v in changes(outputs) if v["segment"] == "lifecycle"][-1] == "active"


def test_rules_without_the_section_keep_and_publish_nothing() -> None:
    book = Book().balance(day(1), "60000.00").txn(day(2), "10.00")
    outputs, engine = run(parse_rules(BASE_RULES % PARAMS), book.encoded(), until=day(9, "00:00:00"))
    assert changes(outputs) == []
    assert engine.customers["A"].segments is None


# ---------------------------------------------------------------- state


def test_segments_survive_the_codec_and_older_formats_still_read() -> None:
    rules = rules_with()
    book = Book().balance(day(1), "60000.00").txn(day(1), "10.00")
    _, engine = run(rules, book.encoded(), until=day(2, "00:00:00"))
    c = engine.customers["A"]
    specs = engine.ledger.specs
    back = codec.decode(codec.encode(c, specs), specs)
    assert back.segments == c.segments == ["new", "R5F1M1", "中价值/low"]
    blob = codec.encode(c, specs)
    doc = codec.unpack(blob)
    doc[9] = [[a, o] for a, o in c.accounts.items()]  # as formats 1 to 3 held them
    doc[14] = [list(pair) for pair in c.seen.items()]
    old = codec.pack([2, *doc[1:16]], 0)  # format 2: no segments
    assert codec.decode(old, specs).segments is None


def test_a_stored_value_the_rules_cannot_give_is_set_again_quietly() -> None:
    rules = rules_with()
    book = Book().balance(day(1), "60000.00").txn(day(1), "10.00")
    _, engine = run(rules, book.encoded(), until=day(2, "00:00:00"))
    record = engine.record("A")
    record.segments = {"lifecycle": "new", "rfm": "R9F9M9", "grid": ""}
    c = engine.seed(record)
    assert c.segments == ["new", "", ""]


def test_the_breakdown_shows_each_dimension_its_score_and_the_band_around_it() -> None:
    book = Book().balance(day(1), "60000.00").txn(day(1), "10.00")
    _, engine = run(rules_with(), book.encoded(), until=day(2, "00:00:00"))
    doc = engine.evaluator.segment_breakdown(engine.customers["A"])
    assert list(doc) == ["lifecycle", "rfm", "grid"]
    assert doc["lifecycle"]["value"] == doc["lifecycle"]["now"] == "new"
    assert doc["lifecycle"]["reads"]["new_days"] == 10
    recency, frequency, monetary = doc["rfm"]["dimensions"]
    assert recency == {
        "role": "recency",
        "metric": "inactive_days",
        "value": 1,
        "score": 5,
        "name": "5",
        "band": {"from": None, "below": 7},
        "order": "less is better",
    }
    assert (frequency["score"], frequency["band"]) == (1, {"from": None, "below": 2})
    assert (monetary["value"], monetary["band"]) == ("4000.00", {"from": None, "below": "10000.00"})
    value, activity = doc["grid"]["dimensions"]
    assert (value["name"], value["band"]) == ("中价值", {"from": "50000.00", "below": "500000.00"})
    assert (activity["metric"], activity["name"]) == ("txn_count_30d", "low")
    assert doc["grid"]["value"] == "中价值/low"
    plain = run(parse_rules(BASE_RULES % PARAMS), book.encoded())[1]
    served = plain.evaluator.segment_breakdown(plain.customers["A"])
    assert list(served) == ["lifecycle", "grid"] and not served["grid"]["published"]


def test_moves_and_counts_agree_including_quiet_sets() -> None:
    book = Book().balance(day(1), "60000.00").txn(day(1), "10.00")
    book.balance(day(1), "900000.00", customer="B")
    _, engine = run(rules_with(), book.encoded(), until=day(3, "00:00:00"))
    counts = engine.segment_counts()
    assert counts["lifecycle"] == {"new": 2}
    assert sum(counts["grid"].values()) == 2 and counts["grid"]["高价值/low"] == 1
    # replaying the moves from nothing gives the same counts
    replayed: dict[str, dict[str, int]] = {"lifecycle": {}, "rfm": {}, "grid": {}}
    for (segment, old, new), n in engine.evaluator.segment_moves.items():
        if old is not None:
            replayed[segment][old] = replayed[segment].get(old, 0) - n
        replayed[segment][new] = replayed[segment].get(new, 0) + n
    assert {s: {v: n for v, n in vals.items() if n} for s, vals in replayed.items()} == counts
