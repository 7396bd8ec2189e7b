"""Session 8's per-event shortcuts (docs/decisions.md 130-131) decide only what the plain
code did: a balance observation (the account found without `tuple.index`, the account's
first record found by walking back rather than a `bisect` over a copied key column), the
minutes and seconds of a cached hour read one character at a time, the decoded events'
own `__init__` setting every field, and the ladder's native checks."""

from __future__ import annotations

import dataclasses
import re
from array import array
from bisect import bisect_left
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tierstream.engine.decode import Balance, Profile, Transaction
from tierstream.engine.evaluate import _check, series_specs
from tierstream.engine.ledger import (
    _ACCOUNT_SHIFT,
    _DAY_BIAS,
    _DAY_FIELD,
    _ID_SEPARATOR,
    Customer,
    Ledger,
    _id_span,
)
from tierstream.engine.partition import PartitionEngine
from tierstream.engine.rules import PRESETS, load_rules
from tierstream.engine.timeutil import TimestampError, parse_instant

RULES = load_rules("cmb")
FIRST_DAY = 20_000


def _plain_observe(
    ledger: Ledger, c: Customer, account_id: str, day: int, ts: int, event_id: str, fen: int, liability: bool
) -> None:
    """`Ledger.observe` as it was before session 8 (commit 338cdca), the reference."""
    accounts = c.account_ids
    try:
        account = accounts.index(account_id)
    except ValueError:
        account = len(accounts)
        c.account_ids = (*accounts, account_id)
    obs = c.obs
    low = -(account << _ACCOUNT_SHIFT)
    key = low + ((day + _DAY_BIAS) << 1)
    count = end = len(obs) // 3
    if account:
        high = low + (1 << _ACCOUNT_SHIFT)
        while end > 0 and obs[3 * end - 3] >= high:
            end -= 1
    pos = end
    prev_key = low - 2
    while pos > 0:
        prev_key = obs[3 * pos - 3]
        if prev_key <= key + 1:
            break
        pos -= 1
    else:
        prev_key = low - 2
    ids = c.obs_ids
    if prev_key | 1 == key | 1:
        p = 3 * pos - 3
        old_ts = obs[p + 1]
        if old_ts > ts:
            return
        if pos == count:
            start, stop = ids.rfind(_ID_SEPARATOR) + 1, len(ids)
        else:
            start, stop = _id_span(ids, pos - 1, count)
        if old_ts == ts and ids[start:stop] > event_id:
            return
        old_fen, old_liab = obs[p + 2], bool(prev_key & 1)
        if old_liab != liability:
            obs[p] = key | liability
        obs[p + 1] = ts
        try:
            obs[p + 2] = fen
        except OverflowError:
            obs = c.obs = list(obs)
            obs[p + 2] = fen
        c.obs_ids = ids[:start] + event_id + ids[stop:]
    else:
        if prev_key >= low:
            old_fen, old_liab = obs[3 * pos - 1], bool(prev_key & 1)
        else:
            old_fen, old_liab = 0, False
        record = (key | liability, ts, fen)
        if pos == count:
            try:
                obs.extend(record)
            except OverflowError:
                del obs[3 * count :]
                obs = c.obs = [*obs, *record]
            ids = f"{ids}{_ID_SEPARATOR}{event_id}" if count else event_id
        else:
            try:
                obs[3 * pos : 3 * pos] = array("q", record) if isinstance(obs, array) else list(record)
            except OverflowError:
                obs = c.obs = list(obs)
                obs[3 * pos : 3 * pos] = record
            start = _id_span(ids, pos, count)[0]
            ids = f"{ids[:start]}{event_id}{_ID_SEPARATOR}{ids[start:]}"
        count += 1
        pos += 1
        end += 1
        horizon = low + ((c.day - ledger.lateness + _DAY_BIAS) << 1)
        first = bisect_left(obs[::3], low, 0, pos)
        if end - first > 1 and obs[3 * first + 3] < horizon:
            keep = 1
            while first + keep + 1 < end and obs[3 * (first + keep + 1)] < horizon:
                keep += 1
            del obs[3 * first : 3 * (first + keep)]
            cut = 0
            for _ in range(first):
                cut = ids.index(_ID_SEPARATOR, cut) + 1
            stop = cut
            for _ in range(keep):
                stop = ids.index(_ID_SEPARATOR, stop) + 1
            ids = ids[:cut] + ids[stop:]
            pos -= keep
            end -= keep
        c.obs_ids = ids
    last = (((obs[3 * pos] & _DAY_FIELD) >> 1) - _DAY_BIAS - 1) if pos < end else c.day
    if day <= last:
        if old_liab == liability:
            if fen != old_fen:
                ledger._add_span(c, ledger.loan if liability else ledger.aum, day, last, fen - old_fen)
        else:
            for index, delta in (
                (ledger.aum, (0 if liability else fen) - (0 if old_liab else old_fen)),
                (ledger.loan, (fen if liability else 0) - (old_fen if old_liab else 0)),
            ):
                if delta:
                    ledger._add_span(c, index, day, last, delta)


def _state(c: Customer) -> tuple[Any, ...]:
    return (c.account_ids, list(c.obs), c.obs_ids, list(c.rings), list(c.sums), c.day, c.peak_day)


#: one step of a customer's life: the day moves on, or an observation within the lateness
#: horizon (ts and fen small enough to collide, and past 64 bits now and then)
STEPS = st.lists(
    st.one_of(
        st.just(("advance",)),
        st.tuples(
            st.just("observe"),
            st.sampled_from(["A", "B", "C", "D"]),
            st.integers(min_value=0, max_value=8),  # days back from the customer's day
            st.integers(min_value=0, max_value=3),  # ts within the day
            st.sampled_from(["e1", "e2", "e3", "x"]),
            st.one_of(st.integers(min_value=0, max_value=500), st.just(1 << 70)),
            st.booleans(),
        ),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(STEPS)
def test_an_observation_changes_the_customer_as_the_plain_code_did(steps: list[tuple[Any, ...]]) -> None:
    ledger = Ledger(series_specs(RULES), RULES.max_lateness_days)
    fast, plain = ledger.new_customer(FIRST_DAY, 0), ledger.new_customer(FIRST_DAY, 0)
    for n, step in enumerate(steps):
        if step[0] == "advance":
            ledger.advance(fast)
            ledger.advance(plain)
        else:
            _, account, back, tick, event, fen, liability = step
            day = fast.day - min(back, ledger.lateness)
            ts = day * 86_400_000_000 + tick
            event_id = f"{event}-{n}"
            ledger.observe(fast, account, day, ts, event_id, fen, liability)
            _plain_observe(ledger, plain, account, day, ts, event_id, fen, liability)
        assert _state(fast) == _state(plain)
        # and what the codec writes of them reads back the same
        assert fast.observation_records() == plain.observation_records()


def test_the_plain_observation_is_the_one_this_test_pins() -> None:
    """The reference above is a copy: a customer it builds reads back through `accounts`."""
    ledger = Ledger(series_specs(RULES), RULES.max_lateness_days)
    c = ledger.new_customer(FIRST_DAY, 0)
    _plain_observe(ledger, c, "A", FIRST_DAY, 5, "e1", 100, False)
    _plain_observe(ledger, c, "B", FIRST_DAY, 6, "e2", 7, True)
    assert c.accounts == {"A": [[FIRST_DAY, 5, "e1", 100, False]], "B": [[FIRST_DAY, 6, "e2", 7, True]]}


CLOCK_CHARACTERS = st.sampled_from([*"0123456789", "a", " ", ":", "\uff13", "\u0663", "\u00b2", "6", "9"])


@given(st.tuples(CLOCK_CHARACTERS, CLOCK_CHARACTERS, CLOCK_CHARACTERS, CLOCK_CHARACTERS))
def test_minutes_and_seconds_of_a_cached_hour_are_read_as_the_grammar_reads_them(
    chars: tuple[str, ...],
) -> None:
    hour = "2026-03-01T09:00:00+08:00"
    start = parse_instant(hour)  # the hour is now cached: the shortcut reads what follows
    text = f"{hour[:14]}{chars[0]}{chars[1]}:{chars[2]}{chars[3]}{hour[19:]}"
    grammar = re.fullmatch(r"[0-5][0-9]:[0-5][0-9]", text[14:19], flags=re.ASCII)
    if grammar is None:
        with pytest.raises(TimestampError):
            parse_instant(text)
    else:
        minutes, seconds = int(text[14:16]), int(text[17:19])
        assert parse_instant(text) == start + (minutes * 60 + seconds) * 1_000_000


#: a value for each field of the decoded events, no two alike (where the type allows)
SAMPLES: dict[str, Any] = {
    "event_id": "event",
    "customer_id": "customer",
    "ts": 1,
    "account_id": "account",
    "fen": 2,
    "debit": True,
    "channel": "channel",
    "counterparty_bank": "bank",
    "balance_after": 3,
    "liability": False,
    "product": "product",
    "attributes": {"attribute": 4},
}
#: another value for the last field of each event
OTHER: dict[str, Any] = {"product": "other", "attributes": {"attribute": 5}}


@pytest.mark.parametrize("event", [Balance, Transaction, Profile])
def test_a_decoded_event_holds_each_argument_in_its_own_field(event: Any) -> None:
    names = [field.name for field in dataclasses.fields(event)]
    values = [SAMPLES[name] for name in names]
    made = event(*values)
    assert [getattr(made, name) for name in names] == values
    assert made == event(*values) and made != event(*values[:-1], OTHER[names[-1]])


def _ladder_conditions() -> list[tuple[Any, Any, Any]]:
    """(evaluator, condition, its closure) for every ladder condition of the presets, and
    each avg one again with `>`, `<`, a literal off by one and a Decimal literal."""
    out = []
    for name in PRESETS:
        evaluator = PartitionEngine(load_rules(name)).evaluator
        for tier in evaluator.tier_tests:
            for cond, _ in tier:
                variants = [cond]
                if cond.metric.kind in ("avg_aum", "avg_loan"):
                    variants += [
                        dataclasses.replace(cond, op=">"),
                        dataclasses.replace(cond, op="<"),
                        dataclasses.replace(cond, literal=cond.literal + 1),
                        dataclasses.replace(cond, literal=Decimal(cond.literal) + Decimal("0.5")),
                    ]
                out += [(evaluator, v, evaluator._test(v)) for v in variants]
    return out


LADDER = _ladder_conditions()


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(LADDER), st.data())
def test_a_ladder_check_holds_exactly_when_its_condition_does(case: tuple[Any, Any, Any], data: Any) -> None:
    evaluator, cond, test = case
    check = _check(cond, test, evaluator.ledger)
    c = evaluator.ledger.new_customer(FIRST_DAY, 0)
    literal = cond.literal if type(cond.literal) is int else 0
    days = cond.metric.window or 1
    # sums around the condition's edge (the window's total for an average of `literal`)
    edge = st.integers(min_value=-3 * days, max_value=3 * days).map(lambda d: literal * days + d)
    c.sums = data.draw(st.lists(st.one_of(edge, st.integers()), min_size=len(c.sums), max_size=len(c.sums)))
    assert check.holds(c) == test(c)
