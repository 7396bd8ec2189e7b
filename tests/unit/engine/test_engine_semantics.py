"""One case per SPEC rule (§3 metrics, §4 evaluation), on small hand-built books."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from tierstream.testing.book import Book, make_rules, of_type, run

TC, OPP, CW, DLQ = "tier.changes", "tier.opportunities", "customer.churn-warnings", "tierstream.dlq"


def day(n: int, hour: str = "10:00:00") -> str:
    """Day n of January 2026 (n may run past 31 into February...)."""
    from datetime import date, timedelta

    return f"{(date(2026, 1, 1) + timedelta(days=n - 1)).isoformat()}T{hour}+08:00"


def midnight(n: int) -> str:
    return day(n, "00:00:00")


# ---------------------------------------------------------------- windows and upgrades
def test_avg_window_counts_days_before_first_sight_as_zero_and_upgrades_on_the_exact_day() -> None:
    # 150,000 from day 1: the 30-day average is 5,000 x n on day n, 50,000 on day 10.
    outputs, _ = run(make_rules(), Book().balance(day(1), "150000.00").encoded(), until=midnight(12))
    changes = of_type(outputs, TC)
    assert [(c["effective_at"], c["to_tier"], c["metrics"]["avg_aum_30d"]) for c in changes] == [
        (midnight(10), "gold", "50000.00")
    ]
    assert changes[0]["matched"] == "avg_aum_30d >= 50000"
    assert changes[0]["metrics"] == {"aum": "150000.00", "avg_aum_30d": "50000.00", "attr.vip": None}


def test_opportunity_band_lower_edge_is_inclusive() -> None:
    # 0.6 x 50,000 = 30,000, reached exactly on day 6 (150,000 x 6 / 30).
    outputs, _ = run(make_rules(), Book().balance(day(1), "150000.00").encoded(), until=midnight(7))
    opps = of_type(outputs, OPP)
    assert len(opps) == 1
    assert opps[0]["effective_at"] == midnight(6)
    assert (opps[0]["value"], opps[0]["threshold"], opps[0]["gap"]) == ("30000.00", "50000.00", "20000.00")
    assert (opps[0]["current_tier"], opps[0]["target_tier"], opps[0]["metric"]) == (
        "base",
        "gold",
        "avg_aum_30d",
    )


def test_opportunity_band_upper_edge_is_exclusive() -> None:
    # 1,500,000 on day 1 gives exactly 50,000: an upgrade, not an opportunity for gold.
    outputs, _ = run(make_rules(), Book().balance(day(1), "1500000.00").encoded())
    assert [c["to_tier"] for c in of_type(outputs, TC)] == ["gold"]
    assert of_type(outputs, OPP) == []


def test_window_drops_the_day_that_leaves_it() -> None:
    # 60,000 only on day 1 (then 0): day 30 still counts it, day 31 does not.
    book = Book().balance(day(1), "1500000.00").balance(day(2), "0.00")
    outputs, _engine = run(make_rules(grace=0), book.encoded(), until=midnight(31))
    changes = of_type(outputs, TC)
    # 1.5M on day 1 alone -> avg 50,000 on day 1; day 2 still 50,000 (day 1 in window).
    assert [(c["effective_at"], c["direction"]) for c in changes] == [
        (day(1), "upgrade"),
        (midnight(31), "downgrade"),
    ]
    assert changes[1]["metrics"]["avg_aum_30d"] == "0.00"


def test_tiers_may_be_skipped_on_upgrade() -> None:
    outputs, _ = run(make_rules(), Book().balance(day(1), "40000000.00").encoded())
    (change,) = of_type(outputs, TC)
    assert (change["from_tier"], change["to_tier"], change["matched"]) == (
        "base",
        "top",
        "avg_aum_30d >= 1000000",
    )
    assert (
        change["event_id"] == hashlib.sha256(f"tier_changed|A|base|top|{day(1)}|t1".encode()).hexdigest()[:32]
    )


# ---------------------------------------------------------------- grace
@pytest.mark.parametrize("grace", [0, 1, 10])
def test_downgrade_waits_grace_days_after_first_falling_below(grace: int) -> None:
    book = Book().balance(day(1), "40000000.00").balance(day(3), "0.00")
    # avg stays >= 1,000,000 while day 1 is inside the window: days 1..30; drops on day 31.
    # On day 31 it is 40M/30 (only days 1..30 included)? No: window [2, 31] has no 40M day
    # except day 2 (day 2 closing is still 40M: the zero came on day 3).
    outputs, _ = run(make_rules(grace=grace), book.encoded(), until=midnight(60))
    downs = [c for c in of_type(outputs, TC) if c["direction"] == "downgrade"]
    # 40M on days 1-2 -> avg_30d = 80M/30 >= 1M until day 2 leaves the window on day 32.
    assert downs[0]["effective_at"] == midnight(32 + grace)
    assert downs[0]["from_tier"] == "top"
    # 40M x 2 / 30 = 2.67M >= 1M, never in between: straight to base
    assert downs[0]["to_tier"] == "base" and downs[0]["matched"] is None


def test_recovering_during_grace_forgets_below_since() -> None:
    book = (
        Book()
        .balance(day(1), "3000000.00")  # avg 100,000 on day 1: gold
        .balance(day(2), "0.00")
    )  # falls: avg 100,000 stays until day 31
    book.balance(day(33), "1500000.00")  # day 32 below (below_since=32), day 33 back
    outputs, _ = run(make_rules(grace=5), book.encoded(), until=midnight(50))
    changes = of_type(outputs, TC)
    # day 31: window [2, 31] is all zero -> below from day 31; back on day 33 (1.5M/30 = 50,000)
    # before the 5-day grace ends; later the 1.5M lifts the average to plat (300,000 on day 38).
    assert [(c["to_tier"], c["effective_at"]) for c in changes] == [("gold", day(1)), ("plat", midnight(38))]


def test_downgrade_goes_to_the_current_qualified_tier() -> None:
    book = Book().balance(day(1), "40000000.00").balance(day(2), "2000000.00")
    outputs, _ = run(make_rules(grace=3), book.encoded(), until=midnight(70))
    downs = [c for c in of_type(outputs, TC) if c["direction"] == "downgrade"]
    # day 31: window [2, 31] = 30 x 2M -> avg 2M (>= 1M): still top. Day 1 leaves on day 31.
    # 40M + 29 x 2M = 98M / 30 on day 30; on day 31: 60M/30 = 2M: still top. Never below.
    assert downs == []


# ---------------------------------------------------------------- cooldowns and churn
def test_opportunities_target_the_next_tier_above_the_current_one() -> None:
    # 1,000,000 held: avg_30d = 33,333.33 x n. Band for gold on day 1, for plat
    # [180,000, 300,000) from day 6, for top [600,000, 1,000,000) from day 18.
    book = Book().balance(day(1), "1000000.00")
    outputs, _ = run(make_rules(opp_cooldown=100), book.encoded(), until=midnight(31))
    assert [(o["effective_at"], o["target_tier"]) for o in of_type(outputs, OPP)] == [
        (day(1), "gold"),
        (midnight(6), "plat"),
        (midnight(18), "top"),
    ]
    assert [(c["effective_at"], c["to_tier"]) for c in of_type(outputs, TC)] == [
        (midnight(2), "gold"),
        (midnight(9), "plat"),
        (midnight(30), "top"),
    ]


def test_opportunity_repeats_after_cooldown_while_in_band() -> None:
    # 35,000 held: avg_30d = 35,000 x n/30 -> in band [30,000, 50,000) from day 26 on
    # (30,333.33) and it stays 35,000 from day 30; with cooldown 3: days 26, 29, 32, 35, ...
    outputs, _ = run(
        make_rules(opp_cooldown=3), Book().balance(day(1), "35000.00").encoded(), until=midnight(36)
    )
    assert [o["effective_at"] for o in of_type(outputs, OPP)] == [
        midnight(26),
        midnight(29),
        midnight(32),
        midnight(35),
    ]


def test_dormant_fires_once_per_spell_and_is_rearmed_by_activity() -> None:
    book = (
        Book()
        .balance(day(1), "1000.00")
        .txn(day(2), "10.00")
        .txn(day(50), "10.00", channel="system")  # system is not activity
        .txn(day(60), "10.00", channel="atm")
    )  # activity re-arms
    outputs, _ = run(make_rules(dormant=30), book.encoded(), until=midnight(100))
    dormant = [w for w in of_type(outputs, CW) if w["reason"] == "dormant"]
    assert [(w["effective_at"], w["metrics"]["inactive_days"]) for w in dormant] == [
        (midnight(32), 30),
        (midnight(90), 30),
    ]
    assert {w["severity"] for w in dormant} == {"low"}  # dormant at the base tier


def test_inactive_days_counts_from_first_sight_without_transactions() -> None:
    outputs, _ = run(make_rules(dormant=5), Book().balance(day(3), "1.00").encoded(), until=midnight(9))
    (w,) = of_type(outputs, CW)
    assert (w["reason"], w["effective_at"], w["metrics"]["inactive_days"]) == ("dormant", midnight(8), 5)


@pytest.mark.parametrize(
    ("balance", "tier", "severity"),
    [
        ("3000000.00", "gold", "medium"),
        ("12000000.00", "plat", "high"),
        ("40000000.00", "top", "high"),
    ],
)
def test_severity_by_tier(balance: str, tier: str, severity: str) -> None:
    book = Book().balance(day(1), balance).balance(day(2), "0.00")
    outputs, _ = run(make_rules(grace=100), book.encoded(), until=midnight(3))
    (w,) = [w for w in of_type(outputs, CW) if w["reason"] == "balance_drop"]
    assert (w["tier"], w["severity"], w["effective_at"]) == (tier, severity, day(2))
    assert list(w["metrics"]) == ["aum", "avg_aum_30d", "attr.vip", "inactive_days", "external_outflow_7d"]


def test_balance_drop_needs_the_peak_over_previous_days_and_min_amount() -> None:
    # Same-day drop does not count (peak looks at [D-30, D-1]); 49,999.99 peak is below min.
    book = (
        Book()
        .balance(day(1), "49999.99", account="X")
        .balance(day(2), "0.00", account="X")
        .balance(day(5), "80000.00")
        .balance(day(5, "12:00:00"), "0.00")
    )
    outputs, _ = run(make_rules(), book.encoded(), until=midnight(6))
    assert of_type(outputs, CW) == []


def test_balance_drop_cooldown_and_ratio_edge() -> None:
    # peak 100,000; aum 50,000 is exactly peak x (1 - 0.5): warns.
    book = Book().balance(day(1), "100000.00").balance(day(2), "50000.00")
    outputs, _ = run(make_rules(churn_cooldown=10, grace=100), book.encoded(), until=midnight(25))
    drops = [w["effective_at"] for w in of_type(outputs, CW) if w["reason"] == "balance_drop"]
    # peak over [D-30, D-1] includes day 1 until day 31; cooldown 10 days
    assert drops == [day(2), midnight(12), midnight(22)]


def test_external_outflow_warning() -> None:
    book = (
        Book()
        .balance(day(1), "100000.00")
        .txn(day(2), "30000.00", counterparty_bank="ICBC")
        .txn(day(3), "20000.00", counterparty_bank="HOME")  # home bank: not external
        .txn(day(4), "20000.00", counterparty_bank="BOC", balance_after="50000.00")
    )
    outputs, _ = run(make_rules(grace=100), book.encoded())
    warnings = [w for w in of_type(outputs, CW) if w["reason"] == "external_outflow"]
    # day 4: outflow 50,000 >= min 50,000 and >= 0.3 x (50,000 + 50,000)
    assert [(w["effective_at"], w["metrics"]["external_outflow_7d"]) for w in warnings] == [
        (day(4), "50000.00")
    ]


# ---------------------------------------------------------------- attributes
def test_attribute_conditions_need_the_same_kind() -> None:
    book = Book().profile(day(1), vip=1).profile(day(2), vip="true")
    outputs, _ = run(make_rules(), book.encoded())
    assert of_type(outputs, TC) == []
    outputs, _ = run(make_rules(), Book().profile(day(1), vip=True).encoded())
    (change,) = of_type(outputs, TC)
    assert (change["to_tier"], change["matched"], change["metrics"]["attr.vip"]) == (
        "plat",
        "attr.vip == true",
        True,
    )


def test_latest_profile_by_ts_wins_even_when_it_arrives_first() -> None:
    book = Book().profile(day(5), vip=True).profile(day(4), vip=False)
    _outputs, engine = run(make_rules(), book.encoded())
    assert engine.customers["A"].attrs["vip"][2] is True


# ---------------------------------------------------------------- late events and duplicates
def test_late_event_within_lateness_is_applied_and_reevaluated_at_the_last_instant() -> None:
    book = (
        Book()
        .balance(day(1), "1000.00")
        .balance(day(10), "1.00", customer="B", account="B1")  # clock -> day 10
        .balance(day(3), "1500000.00")
    )  # 7 days late: applied
    outputs, engine = run(make_rules(), book.encoded())
    (change,) = of_type(outputs, TC)
    # A's last instant is the day-10 boundary; days 3..10 hold 1.5M, days 1-2 hold 1,000:
    # (2 x 1,000 + 8 x 1,500,000) / 30 = 400,066.66 -> plat
    assert (change["effective_at"], change["to_tier"]) == (midnight(10), "plat")
    assert change["metrics"]["avg_aum_30d"] == "400066.66"
    assert engine.outcomes["applied"] == 3


def test_too_late_is_dead_lettered_with_the_exact_record() -> None:
    book = Book().balance(day(1), "1000.00").balance(day(10), "1.00").balance(day(2, "23:59:59"), "5.00")
    lines = book.encoded()
    outputs, engine = run(make_rules(), lines)
    (dead,) = of_type(outputs, DLQ)
    assert dead == {
        "source_topic": "bank.balances",
        "partition": 0,
        "offset": 2,
        "key": "A",
        "payload": '{"event_id":"e3","customer_id":"A","account_id":"A1","product":"deposit",'
        '"balance":"5.00","ts":"2026-01-02T23:59:59+08:00"}',
        "payload_encoding": "utf-8",
        "error": "too_late",
        "detail": "business day 2026-01-02 is 8 days behind the partition clock (2026-01-10); "
        "max_lateness_days is 7",
    }
    assert dict(engine.outcomes) == {"applied": 2, "duplicate": 0, "dead_letter": 1}


def test_duplicates_are_counted_not_applied_and_checked_after_validation() -> None:
    book = (
        Book()
        .balance(day(1), "100.00", event_id="x1")
        .balance(day(1, "11:00:00"), "999999.00", event_id="x1")
    )
    book.balance(day(1, "12:00:00"), "12.345", event_id="x1")  # malformed redelivery
    outputs, engine = run(make_rules(), book.encoded())
    assert dict(engine.outcomes) == {"applied": 1, "duplicate": 1, "dead_letter": 1}
    assert [v["error"] for v in of_type(outputs, DLQ)] == ["bad_amount"]
    assert engine.customers["A"].series[0].ring[engine.customers["A"].day % 31] == 10000


def test_same_event_id_for_another_customer_is_not_a_duplicate() -> None:
    book = Book().balance(day(1), "1.00", event_id="x").balance(day(1), "1.00", event_id="x", customer="B")
    _, engine = run(make_rules(), book.encoded())
    assert engine.outcomes["applied"] == 2


# ---------------------------------------------------------------- dead letters
@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            '{"event_id":"a","customer_id":"A","account_id":"A1","product":"deposit","balance":NaN,"ts":"2026-01-01T10:00:00+08:00"}',
            "invalid_json",
        ),
        ("not json", "invalid_json"),
        ("[1,2]", "schema_violation"),
        (
            '{"event_id":"a","customer_id":"A","account_id":"A1","product":"gold_bar","balance":"1","ts":"2026-01-01T10:00:00+08:00"}',
            "schema_violation",
        ),
        (
            '{"event_id":"a","customer_id":"A","account_id":"A1","product":"deposit","balance":null,"ts":"2026-01-01T10:00:00+08:00"}',
            "schema_violation",
        ),
        (
            '{"event_id":"a","customer_id":"A","account_id":"A1","product":"deposit","balance":true,"ts":"2026-01-01T10:00:00+08:00"}',
            "schema_violation",
        ),
        (
            '{"event_id":"a","customer_id":"A","account_id":"A1","product":"deposit","balance":"1","currency":"EUR","ts":"2026-01-01T10:00:00+08:00"}',
            "schema_violation",
        ),
        (
            '{"event_id":"","customer_id":"A","account_id":"A1","product":"deposit","balance":"1","ts":"2026-01-01T10:00:00+08:00"}',
            "schema_violation",
        ),
        (
            '{"customer_id":"A","account_id":"A1","product":"deposit","balance":"1","ts":"2026-01-01T10:00:00+08:00"}',
            "schema_violation",
        ),
        (
            '{"event_id":"a","customer_id":"A","account_id":"A1","product":"deposit","balance":"12.345","ts":"2026-01-01T10:00:00+08:00"}',
            "bad_amount",
        ),
        (
            '{"event_id":"a","customer_id":"A","account_id":"A1","product":"credit_card","balance":"-0.01","ts":"2026-01-01T10:00:00+08:00"}',
            "bad_amount",
        ),
        (
            '{"event_id":"a","customer_id":"A","account_id":"A1","product":"deposit","balance":"1","ts":"2026-01-01T10:00:00"}',
            "naive_timestamp",
        ),
    ],
)
def test_balance_dead_letter_codes(text: str, error: str) -> None:
    outputs, engine = run(make_rules(), Book().raw("bank.balances", text).encoded())
    (dead,) = of_type(outputs, DLQ)
    assert (dead["error"], dead["payload"], dead["offset"]) == (error, text, 0)
    assert engine.outcomes["applied"] == 0


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"amount": "0.00"}, "bad_amount"),
        ({"amount": "-1.00"}, "bad_amount"),
        ({"direction": "sideways"}, "schema_violation"),
        ({"channel": "carrier_pigeon"}, "schema_violation"),
        ({"balance_after": "-1.00", "product": "loan"}, "bad_amount"),
        ({"counterparty_bank": 7}, "schema_violation"),
    ],
)
def test_transaction_dead_letter_codes(fields: dict[str, object], error: str) -> None:
    fields = {"amount": "1.00", **fields}
    amount = str(fields.pop("amount"))
    outputs, _ = run(make_rules(), Book().txn(day(1), amount, **fields).encoded())
    assert [v["error"] for v in of_type(outputs, DLQ)] == [error]


def test_oversize_is_checked_first_on_raw_bytes() -> None:
    big = '{"x":"' + "y" * 70000 + '"'  # not even JSON: still oversize
    outputs, _ = run(make_rules(), Book().raw("bank.balances", big).encoded())
    (dead,) = of_type(outputs, DLQ)
    assert dead["error"] == "oversize" and dead["payload"] == big[:4096]
    assert dead["detail"].endswith("(payload: its first 4,096 bytes)")


def test_an_oversize_dead_letter_never_cuts_a_character_in_two() -> None:
    big = '{"x":"' + "金" * 30000 + '"}'  # 3-byte characters: 4,096 is not a boundary
    outputs, _ = run(make_rules(), Book().raw("bank.balances", big).encoded())
    (dead,) = of_type(outputs, DLQ)
    assert dead["payload_encoding"] == "utf-8" and big.startswith(dead["payload"])
    assert 4093 < len(dead["payload"].encode("utf-8")) <= 4096


def test_future_timestamp_only_against_now() -> None:
    book = Book().balance("2026-01-01T10:05:01+08:00", "1.00").balance("2026-01-01T10:05:00+08:00", "1.00")
    outputs, engine = run(make_rules(), book.encoded(), now="2026-01-01T10:00:00+08:00")
    assert [v["error"] for v in of_type(outputs, DLQ)] == ["future_timestamp"]
    assert engine.outcomes["applied"] == 1
    outputs, _ = run(make_rules(), book.encoded())
    assert of_type(outputs, DLQ) == []


def test_unknown_topic_and_non_json_lines() -> None:
    lines = [b'{"topic": "bank.loans", "value": {"customer_id": "A"}}', b"{oops", b"  "]
    outputs, engine = run(make_rules(), lines)
    assert [(v["error"], v["offset"], v["source_topic"]) for v in of_type(outputs, DLQ)] == [
        ("schema_violation", 0, "bank.loans"),
        ("invalid_json", 1, None),
    ]
    assert engine.outcomes["dead_letter"] == 2


# ---------------------------------------------------------------- time zones and money
def test_z_and_offset_inputs_fall_on_the_same_business_day() -> None:
    # 2026-01-09T16:00:00Z is 00:00 on 2026-01-10 in Shanghai: that day's closing.
    book = Book().balance(day(1), "0.00").balance("2026-01-09T16:00:00Z", "1500000.00")
    outputs, _ = run(make_rules(), book.encoded())
    (change,) = of_type(outputs, TC)
    assert change["effective_at"] == midnight(10)  # rendered in the rules' timezone


def test_foreign_currency_converts_at_the_fixed_rate() -> None:
    book = Book().balance(day(1), "211267.60", currency="USD")  # x 7.1 = 1,499,999.96 -> not gold
    outputs, _engine = run(make_rules(), book.encoded())
    assert of_type(outputs, TC) == []
    book = Book().balance(day(1), 211267.62, currency="USD")  # JSON number: 1,500,000.10
    outputs, _ = run(make_rules(), book.encoded())
    assert [c["metrics"]["aum"] for c in of_type(outputs, TC)] == ["1500000.10"]


def test_negative_asset_balances_count() -> None:
    book = Book().balance(day(1), "1600000.00").balance(day(1), "-100000.00", account="A2")
    outputs, _ = run(make_rules(), book.encoded())
    assert [c["metrics"]["aum"] for c in of_type(outputs, TC)] == ["1600000.00"]
    # the overdraft came after the upgrade; the next evaluation sees 1,500,000


def test_decimal_attributes_are_written_as_json_numbers() -> None:
    from tierstream.engine.rules import load_rules
    from tierstream.tools.simulate import output_line

    rules = load_rules("psbc")
    lines = [
        b'{"topic":"bank.profiles","value":{"event_id":"p1","customer_id":"P","ts":"2026-01-01T10:00:00+08:00",'
        b'"attributes":{"household_income":250000.5,"high_end_card":false}}}'
    ]
    outputs, _ = run(rules, lines)
    (change,) = of_type(outputs, TC)
    assert change["matched"] == "attr.household_income >= 200000"
    assert change["metrics"]["attr.household_income"] == 250000.5
    assert change["metrics"]["attr.high_end_card"] is False
    assert change["metrics"]["attr.diamond_card"] is None
    assert '"attr.household_income": 250000.5' in output_line(("tier.changes", "P", change))


def test_a_lone_surrogate_is_dead_lettered_not_a_crash() -> None:
    outputs, _ = run(
        make_rules(), [b'{"topic": "bank.balances", "value": "{\\"event_id\\": \\"\\ud800\\"}"}']
    )
    (dead,) = of_type(outputs, DLQ)
    assert (dead["error"], dead["payload_encoding"]) == ("invalid_json", "base64")


def test_lifecycle_moves_new_churn_risk_dormant_and_back() -> None:
    """Without a segments section the lifecycle and the 2 x 2 grid are served live."""

    def served(engine: Any) -> dict[str, str]:
        return dict(engine.evaluator.serving_segments(engine.customers["A"]))

    rules = make_rules(dormant=20, grace=100)
    book = Book().balance(day(1), "3000000.00").txn(day(2), "10.00").balance(day(3), "10.00")
    _, engine = run(rules, book.encoded())
    # the balance drop on day 3; high value by the 30-day average (3,000,000 x 2 / 30 =
    # 200,000 >= 50,000), one transaction
    assert served(engine) == {"lifecycle": "churn_risk", "grid": "high_value/inactive"}
    book.txn(day(4), "10.00")
    _, engine = run(rules, book.encoded())
    assert served(engine)["lifecycle"] == "new"  # activity resumed, within 90 days
    _, engine = run(rules, book.encoded(), until=midnight(30))
    assert served(engine)["lifecycle"] == "dormant"  # 20 days without activity
    book.txn(day(95), "10.00", channel="pos")
    _, engine = run(rules, book.encoded())
    assert served(engine)["lifecycle"] == "active"  # past 90 days, active again
    assert engine.customers["A"].segments is None  # nothing kept or published without the section


def test_segments_are_configurable() -> None:
    from tierstream.engine.rules import parse_rules

    rules = parse_rules(
        'scheme: s\nversion: "1"\ntiers: [{id: base}, {id: gold, any_of: ["avg_aum_30d >= 50000"]}]\n'
        "segments: {high_value_from: 20000, active_txn_30d: 2}\n"
    )
    assert (rules.segment_value_fen, rules.segment_active_txn) == (2_000_000, 2)
    assert make_rules().segment_value_fen == 5_000_000  # default: the first tier's average threshold
