"""The day-boundary shortcuts (docs/decisions.md 122) decide only what the plain code did:
the seen-set lookup and trim, the segment band scores, and the balance-drop peak stepped
on by `Ledger.advance`."""

from __future__ import annotations

import textwrap
from array import array
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tierstream.engine.evaluate import _scorer
from tierstream.engine.ledger import Seen
from tierstream.engine.partition import PartitionEngine
from tierstream.engine.rules import PRESETS, load_rules, parse_rules
from tierstream.engine.timeutil import parse_instant
from tierstream.testing.book import BASE_RULES, make_rules, strip_wall
from tierstream.testing.strategies import histories, ts
from tierstream.tools.simulate import feed_line, output_line

FINGERPRINTS = st.integers(min_value=0, max_value=(1 << 64) - 1)
ENTRIES = st.lists(st.tuples(FINGERPRINTS, st.integers(min_value=-5, max_value=40)), max_size=40)


@given(ENTRIES, st.data())
def test_a_fingerprint_is_held_exactly_when_the_array_holds_it(entries: list[Any], data: Any) -> None:
    seen = Seen(entries)
    held = [fp for fp, _ in entries]
    # held ones, others, and byte patterns straddling two entries of the array
    raw = seen.fingerprints.tobytes()
    straddling = [int.from_bytes(raw[i : i + 8], "little") for i in range(1, max(len(raw) - 8, 1), 3)]
    probes = [*held, *straddling, data.draw(FINGERPRINTS), -1, 1 << 64]
    for fp in probes:
        assert (fp in seen) == (fp in held)


def test_a_fingerprint_made_of_two_halves_of_neighbours_is_not_held() -> None:
    seen = Seen([(0x1111111111111111, 1), (0x2222222222222222, 1)])
    raw = seen.fingerprints.tobytes()
    across = int.from_bytes(raw[4:12], "little" if array("H", [1]).tobytes()[0] else "big")
    assert across not in seen
    assert 0x2222222222222222 in seen


@given(ENTRIES, st.integers(min_value=-6, max_value=42))
def test_forgetting_keeps_the_entries_of_the_horizon_on_in_order(entries: list[Any], horizon: int) -> None:
    seen = Seen(entries)
    seen.forget_before(horizon)
    # as before the shortcut: nothing goes unless the first entry is before the horizon
    # (entries arrive nearly in day order; a late one waits for the next trim)
    expected = entries if not entries or entries[0][1] >= horizon else [e for e in entries if e[1] >= horizon]
    assert list(seen.items()) == [tuple(e) for e in expected]
    assert seen.fingerprints.typecode == "Q" and seen.days.typecode == "i"


@given(st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=30), st.data())
def test_forgetting_day_ordered_entries_cuts_the_front(days: list[int], data: Any) -> None:
    days.sort()
    seen = Seen((i, d) for i, d in enumerate(days))
    horizon = data.draw(st.integers(min_value=days[0], max_value=days[-1] + 1))
    seen.forget_before(horizon)
    assert list(seen.days) == [d for d in days if d >= horizon]


SEGMENTS = """
segments:
  rfm:
    recency:   {metric: inactive_days, bands: [7, 30, 90, 180]}
    frequency: {metric: txn_count_30d, bands: [2, 6.5]}
    monetary:  {metric: avg_aum_30d,   bands: [10000, 50000]}
  grid:
    value:    {metric: aum,           bands: [50000, 500000], names: [low, mid, high]}
    activity: {metric: txn_count_30d, bands: [4, 15]}
"""


def _dimensions() -> list[Any]:
    custom = parse_rules(
        BASE_RULES % {"grace": 10, "opp_cooldown": 30, "dormant": 30, "churn_cooldown": 30, "lateness": 7}
        + textwrap.dedent(SEGMENTS),
        "seg.yaml",
    )
    dims = [*(custom.segments.dimensions() if custom.segments else ())]
    for preset in PRESETS:
        rules = load_rules(preset)
        dims += [*rules.serving_grid(), *(rules.segments.dimensions() if rules.segments else ())]
    return dims


DIMENSIONS = _dimensions()


@pytest.mark.parametrize("index", range(len(DIMENSIONS)))
@given(
    st.one_of(
        st.integers(min_value=-(10**12), max_value=10**12),
        st.decimals(min_value=-(10**6), max_value=10**6, allow_nan=False, places=2),
    ),
)
def test_a_band_score_is_the_dimensions_own(index: int, value: Any) -> None:
    d = DIMENSIONS[index]
    score = _scorer(d)
    assert score(value) == d.score(value)
    for edge in d.bands:  # on, just below and just above every edge
        for v in (edge, edge - 1, edge + 1, Decimal(edge) - Decimal("0.01")):
            assert score(v) == d.score(v)


def _run(lines: list[bytes], rules: Any, steps: bool) -> tuple[list[str], PartitionEngine]:
    engine = PartitionEngine(rules)
    engine.ledger.peak_steps = steps
    out: list[str] = []
    for number, line in enumerate(lines):
        out += [output_line((t, k, strip_wall(v))) for t, k, v in feed_line(engine, number, line)]
        for c in engine.customers.values():  # a cached peak is the one computed afresh
            if c.peak_day == c.day:
                held = c.peak
                c.peak_day = None
                assert engine.ledger.peak(c) == held
    out += [output_line((t, k, strip_wall(v))) for t, k, v in engine.advance_clock(parse_instant(ts(400, 0)))]
    return out, engine


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.integers(min_value=0, max_value=5))
def test_a_peak_stepped_on_at_each_boundary_gives_the_same_outputs(lines: list[bytes], grace: int) -> None:
    rules = make_rules(grace=grace, dormant=20, churn_cooldown=2, opp_cooldown=4)
    stepped, engine = _run(lines, rules, steps=True)
    computed, _ = _run(lines, rules, steps=False)
    assert stepped == computed
    assert engine.ledger.peak_steps


def test_the_peak_is_kept_for_its_window_only() -> None:
    engine = PartitionEngine(make_rules())
    c = engine.ledger.new_customer(100, 0)
    with pytest.raises(ValueError, match="kept for 30 days"):
        engine.ledger.peak(c, 7)
