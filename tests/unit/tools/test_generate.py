"""The synthetic bank: deterministic, ordered, well-formed, realistic, streamed."""

from __future__ import annotations

import io
import itertools
import json
import re
import time
import tracemalloc
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

import pytest

from tierstream.tools.generate import generate_events, write_events

INPUTS = {"bank.balances", "bank.transactions", "bank.profiles"}
ASSETS = {"deposit", "time_deposit", "wealth", "fund", "insurance"}
LIABILITIES = {"loan", "credit_card"}
CHANNELS = {"branch", "atm", "mobile", "online", "pos", "transfer", "system"}
MONEY = re.compile(r"-?[0-9]+\.[0-9]{2}")
WIRE_TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|\+08:00)")
CID = re.compile(r"C\d{6,}")


def text(lines: Any) -> str:
    buf = io.StringIO()
    write_events(lines, buf)
    return buf.getvalue()


def instant(ts: str) -> datetime:
    return datetime.fromisoformat(ts)


def fen(money: str) -> int:
    return int(Decimal(money) * 100)


@cache
def clean(customers: int, days: int, seed: int) -> tuple[str, ...]:
    """The base stream as compact JSON lines (cached: several tests compare against it)."""
    return tuple(text(generate_events(customers, days, seed)).splitlines())


def parsed(lines: tuple[str, ...]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    a = text(generate_events(60, 10, 3, noise=True, late=True))
    b = text(generate_events(60, 10, 3, noise=True, late=True))
    assert a == b
    assert a != text(generate_events(60, 10, 4, noise=True, late=True))
    assert "\n".join(clean(60, 10, 3)) + "\n" != a  # noise and lateness change the file


def test_write_events_writes_compact_lines_and_counts_them() -> None:
    lines = list(generate_events(20, 3, 1))
    buf = io.StringIO()
    assert write_events(iter(lines), buf) == len(lines) > 0
    out = buf.getvalue()
    assert out.endswith("\n") and out.count("\n") == len(lines)
    for raw, line in zip(out.splitlines(), lines, strict=True):
        assert raw == json.dumps(line, ensure_ascii=False, separators=(",", ":"))
    assert write_events([], io.StringIO()) == 0


def test_clean_stream_is_time_ordered_and_matches_the_input_contract() -> None:
    lines = parsed(clean(200, 20, 11))
    ids: dict[str, set[str]] = defaultdict(set)
    last = None
    zulu = 0
    for line in lines:
        assert set(line) == {"topic", "value"} and line["topic"] in INPUTS
        v = line["value"]
        assert isinstance(v, dict)
        assert CID.fullmatch(v["customer_id"])
        assert 1 <= len(v["event_id"]) <= 128 and v["event_id"].isprintable()
        assert v["event_id"] not in ids[v["customer_id"]], "event_id must be unique per customer"
        ids[v["customer_id"]].add(v["event_id"])
        assert WIRE_TS.fullmatch(v["ts"]), v["ts"]
        zulu += v["ts"].endswith("Z")
        t = instant(v["ts"])
        assert last is None or t >= last, f"{v['ts']} goes back in time"
        last = t
        if line["topic"] == "bank.profiles":
            assert set(v) == {"event_id", "customer_id", "ts", "attributes"}
            assert v["attributes"] and all(
                isinstance(a, (bool, int, float, str)) for a in v["attributes"].values()
            )
            continue
        assert v["account_id"].startswith(v["customer_id"] + "-")
        assert v.get("currency", "CNY") in {"CNY", "USD"}
        if line["topic"] == "bank.balances":
            assert {"account_id", "product", "balance"} <= set(v)
            assert v["product"] in ASSETS | LIABILITIES
            assert MONEY.fullmatch(v["balance"])
            if v["product"] in LIABILITIES:
                assert fen(v["balance"]) >= 0
            if v.get("currency") == "USD":
                assert v["product"] == "wealth"
        else:
            assert {"account_id", "amount", "direction", "channel"} <= set(v)
            assert MONEY.fullmatch(v["amount"]) and fen(v["amount"]) > 0
            assert v["direction"] in {"credit", "debit"} and v["channel"] in CHANNELS
            assert v.get("product", "deposit") in ASSETS | LIABILITIES
            assert v.get("currency", "CNY") == "CNY"
            if "balance_after" in v:
                assert MONEY.fullmatch(v["balance_after"])
                if v.get("product") in LIABILITIES:
                    assert fen(v["balance_after"]) >= 0
    assert 0.02 < zulu / len(lines) < 0.09  # about 5 % written in UTC


def test_balance_after_is_the_running_balance_of_its_account() -> None:
    running: dict[str, int] = {}
    checked = omitted = 0
    for line in parsed(clean(200, 20, 11)):
        v = line["value"]
        acct = v.get("account_id", "")
        if not acct.endswith(("-D1", "-K1")):
            continue  # deposits and cards move by transactions; other products by snapshots
        if line["topic"] == "bank.balances":
            if acct in running:
                assert running[acct] == fen(v["balance"]), acct
                checked += 1
            running[acct] = fen(v["balance"])
            continue
        sign = 1 if v["direction"] == "credit" else -1
        if acct.endswith("-K1"):
            sign = -sign  # a card balance is the amount owed
        running[acct] += sign * fen(v["amount"])
        if "balance_after" in v:
            assert running[acct] == fen(v["balance_after"]), v
            checked += 1
        elif acct.endswith("-D1"):
            omitted += 1
    assert checked > 5000 and omitted > 100  # most deposit postings carry it, some do not


def test_persona_coverage_over_a_quarter_of_customers() -> None:
    lines = parsed(clean(300, 60, 5))
    products = Counter[str]()
    seen = Counter[str]()
    balances: dict[str, dict[str, tuple[str, int]]] = defaultdict(dict)
    first_day_aum: dict[str, int] = {}
    crossed: set[str] = set()
    active: set[str] = set()
    customers: set[str] = set()
    start = instant("2026-01-02T00:00:00+08:00")
    for line in lines:
        v = line["value"]
        cid = v["customer_id"]
        customers.add(cid)
        t = instant(v["ts"])
        if t >= start and not first_day_aum:
            first_day_aum = {
                c: sum(f for p, f in accts.values() if p in ASSETS) for c, accts in balances.items()
            }
        if line["topic"] == "bank.profiles":
            continue
        if line["topic"] == "bank.balances":
            products[v["product"]] += 1
            balances[cid][v["account_id"]] = (
                v["product"],
                fen(v["balance"]) * (7 if v.get("currency") == "USD" else 1),
            )
            seen["negative deposit"] += v["product"] == "deposit" and fen(v["balance"]) < 0
        else:
            if v["channel"] != "system":
                active.add(cid)
            seen[f"{v['channel']} {v['direction']}"] += 1
            bank = v.get("counterparty_bank")
            if v["direction"] == "debit" and bank is not None:
                seen["external outflow" if bank != "CMB" else "internal transfer"] += 1
            if "balance_after" in v:
                balances[cid][v["account_id"]] = (v.get("product", "deposit"), fen(v["balance_after"]))
        aum = sum(f for p, f in balances[cid].values() if p in ASSETS)
        if first_day_aum and first_day_aum.get(cid, 0) < 5_000_000 <= aum:
            crossed.add(cid)
    assert products["loan"] > 0 and products["credit_card"] > 0
    assert {"wealth", "fund", "time_deposit", "insurance"} <= set(products)
    for kind in (
        "pos debit",
        "atm debit",
        "transfer credit",
        "system credit",
        "system debit",
        "mobile debit",
        "branch credit",
        "external outflow",
        "internal transfer",
    ):
        assert seen[kind] > 0, kind
    assert crossed, "some customer's AUM should rise across 50,000.00"
    assert customers - active, "some dormant customers do nothing but earn interest"
    assert any(sum(f for p, f in accts.values() if p in ASSETS) >= 500_000_000 for accts in balances.values())


def test_churners_drain_to_other_banks() -> None:
    outflow: Counter[str] = Counter()
    for line in parsed(clean(300, 60, 5)):
        v = line["value"]
        if (
            line["topic"] == "bank.transactions"
            and v["direction"] == "debit"
            and v.get("counterparty_bank") in {"ICBC", "BOC", "ABC", "CCB"}
        ):
            outflow[v["customer_id"]] += fen(v["amount"])
    assert max(outflow.values()) >= 5_000_000  # at least 50,000.00 sent away


def test_home_bank_is_a_parameter() -> None:
    banks = {line["value"].get("counterparty_bank") for line in generate_events(100, 15, 2, home_bank="ICBC")}
    assert {"ICBC", "CMB", "BOC"} <= banks  # internal transfers name the home bank, CMB is another bank


def test_usd_can_be_switched_off() -> None:
    def currencies(usd: bool) -> set[Any]:
        return {line["value"].get("currency") for line in generate_events(400, 2, 9, usd=usd)}

    assert "USD" in currencies(True)
    assert currencies(False) <= {None, "CNY"}


def test_noise_adds_redeliveries_and_bad_records_over_the_same_base_stream() -> None:
    base = clean(200, 20, 11)
    noisy = text(generate_events(200, 20, 11, noise=True)).splitlines()
    seen: dict[tuple[str, str], str] = {}
    kept: list[str] = []
    raw = dup = foreign = 0
    for row in noisy:
        line = json.loads(row)
        v = line["value"]
        if isinstance(v, str):
            raw += 1
            continue
        if line["topic"] not in INPUTS:
            foreign += 1
            continue
        key = (v["customer_id"], v["event_id"])
        if key in seen:
            assert seen[key] == row, "a redelivery is an exact copy"
            dup += 1
            continue
        seen[key] = row
        kept.append(row)
    assert kept == list(base)
    n = len(base)
    assert 0.01 * n < dup < 0.02 * n
    assert 0.004 * n < raw + foreign < 0.012 * n and foreign > 0
    assert raw > 20


def test_bad_records_cover_the_dead_letter_reasons() -> None:
    raw = [json.loads(r)["value"] for r in text(generate_events(300, 20, 4, noise=True)).splitlines()]
    bad = [v for v in raw if isinstance(v, str)]
    not_json = 0
    for payload in bad:
        try:
            json.loads(payload, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        except ValueError:
            not_json += 1
    joined = "\n".join(bad)
    assert not_json > 0
    for needle in ('"12.345"', '"1_000"', '"-1200.00"', '"RMB"', ":NaN", '"segment":["'):
        assert needle in joined, needle
    assert re.search(r'"ts":"[0-9-]+T\d\d:\d\d\+08:00"', joined), "a timestamp without seconds"
    assert re.search(r'"ts":"[0-9-]+T\d\d:\d\d:\d\d"', joined), "a timestamp without offset"


def test_oversize_records_are_rare_but_exist() -> None:
    from tierstream.tools.generate import _oversize

    line = _oversize(1, {"customer_id": "C000007", "ts": "2026-01-01T00:00:00+08:00"})
    assert len(line["value"].encode()) > 65_536
    assert json.loads(line["value"])["customer_id"] == "C000007"


def test_late_delays_about_one_percent_by_hours_to_nine_days() -> None:
    base = clean(200, 20, 11)
    late = text(generate_events(200, 20, 11, late=True)).splitlines()
    assert sorted(late) == sorted(base)  # the same events, some of them later in the file
    assert late != list(base)
    high = None
    lateness: list[timedelta] = []
    for row in late:
        t = instant(json.loads(row)["value"]["ts"])
        if high is not None and t < high:
            lateness.append(high - t)
        high = t if high is None or t > high else high
    out_of_order = len(lateness)
    assert out_of_order > 0
    assert max(lateness) <= timedelta(days=9, hours=13)
    assert max(lateness) > timedelta(days=7), "a few exceed a 7-day lateness allowance"
    moved = sum(a != b for a, b in zip(late, base, strict=True))
    assert moved > 0


def test_events_per_customer_day() -> None:
    n = len(clean(300, 60, 5))
    assert 1.0 <= n / (300 * 60) <= 3.0


def test_the_generator_is_lazy_even_for_a_million_customers() -> None:
    began = time.perf_counter()
    first = list(itertools.islice(generate_events(1_000_000, 30, 1), 10))
    assert time.perf_counter() - began < 3.0
    assert len(first) == 10
    assert all(line["value"]["ts"] in ("2026-01-01T00:00:00+08:00", "2025-12-31T16:00:00Z") for line in first)
    assert first[0]["topic"] == "bank.profiles"


def test_memory_does_not_grow_with_days() -> None:
    def peak(customers: int, days: int) -> int:
        tracemalloc.start()
        try:
            for _ in generate_events(customers, days, 8, noise=True):
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    list(itertools.islice(generate_events(1, 1, 0), 1))  # builds the module's clock-text table once
    short, long = peak(200, 3), peak(200, 30)
    assert long < short * 1.5 + 500_000, (short, long)
    # per-customer state is a few compact columns (about 100 bytes), not Python objects
    few, many = peak(1000, 1), peak(4000, 1)
    assert (many - few) / 3000 < 200, (few, many)


def test_start_date_moves_the_calendar() -> None:
    lines = list(itertools.islice(generate_events(30, 3, 1, start=date(2026, 3, 1)), 200))
    assert lines[0]["value"]["ts"] in ("2026-03-01T00:00:00+08:00", "2026-02-28T16:00:00Z")
    assert all(instant(line["value"]["ts"]).date() >= date(2026, 2, 28) for line in lines)


@pytest.mark.parametrize(("customers", "days"), [(0, 5), (5, 0)])
def test_bad_sizes_are_refused_at_the_call(customers: int, days: int) -> None:
    with pytest.raises(ValueError):
        generate_events(customers, days, 1)
