"""The literal reference (tests/reference/literal.py) against the worked examples and a few
hand-derived cases. Expected values below are derived by hand from SPEC.md, not by running
anything; the derivation is in the comments."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.reference.literal import RulesError, parse_rules, reference_simulate

EXAMPLES = Path("/work/shared/examples")
if not EXAMPLES.is_dir():  # pragma: no cover - the project keeps a copy as a fixture
    EXAMPLES = Path(__file__).parent.parent / "fixtures" / "examples"

DLQ = "tierstream.dlq"


# ---------------------------------------------------------------------------------------------
# Worked examples
# ---------------------------------------------------------------------------------------------

EXAMPLE_RUNS = [
    ("lifecycle", "2026-04-30T00:00:00+08:00"),
    ("bad-input", None),
]


@pytest.mark.parametrize(("name", "until"), EXAMPLE_RUNS)
def test_worked_example(name: str, until: str | None) -> None:
    rules = (EXAMPLES / f"{name}.rules.yaml").read_text(encoding="utf-8")
    lines = (EXAMPLES / f"{name}.events.jsonl").read_text(encoding="utf-8").split("\n")
    expected = [
        json.loads(ln)
        for ln in (EXAMPLES / f"{name}.expected.jsonl").read_text(encoding="utf-8").splitlines()
        if ln.strip()
    ]
    expected_stats = json.loads((EXAMPLES / f"{name}.expected-stats.json").read_text(encoding="utf-8"))

    outputs, stats = reference_simulate(rules, lines, until=until)

    assert [o for o in outputs if o["topic"] != DLQ] == expected
    # Key order is part of the contract too.
    for mine, theirs in zip([o for o in outputs if o["topic"] != DLQ], expected, strict=True):
        assert list(mine["value"]) == list(theirs["value"])
    assert stats["outcomes"] == expected_stats["outcomes"]
    assert stats["dead_letters"] == expected_stats["dead_letters"]
    dlq = [o["value"] for o in outputs if o["topic"] == DLQ]
    assert len(dlq) == expected_stats["outcomes"]["dead_letter"]
    counted: dict[str, int] = {}
    for record in dlq:
        counted[record["error"]] = counted.get(record["error"], 0) + 1
    assert counted == expected_stats["dead_letters"]


def test_bad_input_dlq_records() -> None:
    rules = (EXAMPLES / "bad-input.rules.yaml").read_text(encoding="utf-8")
    lines = (EXAMPLES / "bad-input.events.jsonl").read_text(encoding="utf-8").split("\n")
    outputs, _ = reference_simulate(rules, lines)
    dlq = [o["value"] for o in outputs if o["topic"] == DLQ]
    assert [(r["offset"], r["error"]) for r in dlq] == [
        (2, "invalid_json"),
        (3, "schema_violation"),
        (4, "bad_amount"),
        (5, "schema_violation"),
        (6, "naive_timestamp"),
        (7, "bad_amount"),
    ]
    for record in dlq:
        assert set(record) == {
            "source_topic",
            "partition",
            "offset",
            "key",
            "payload",
            "payload_encoding",
            "error",
            "detail",
        }
        assert record["partition"] == 0 and record["key"] == "B" and record["payload_encoding"] == "utf-8"
    assert dlq[0]["source_topic"] == "bank.balances"
    assert dlq[1]["source_topic"] == "bank.profiles"
    # The payload of an object value is its compact JSON, numbers written as they were.
    assert dlq[0]["payload"] == (
        '{"event_id":"a3","customer_id":"B","account_id":"B3","product":"deposit",'
        '"balance":NaN,"ts":"2026-01-01T10:00:02+08:00"}'
    )


# ---------------------------------------------------------------------------------------------
# Hand-built cases
# ---------------------------------------------------------------------------------------------

# A ladder on `aum` (no avg_aum condition, so no opportunities) with churn switched off.
LADDER = """
scheme: hand
version: "h1"
timezone: Asia/Shanghai
home_bank: HOME
tiers:
  - {id: base}
  - {id: silver, any_of: ["aum >= 100"]}
  - {id: gold, any_of: ["aum >= 1000"]}
  - {id: top, any_of: ["aum >= 10000"]}
downgrade: {grace_days: %(grace)d}
opportunity: {ratio: 0.6, cooldown_days: 30}
churn: {dormant_after_days: 1000, drop_ratio: 0.5, outflow_ratio: 0.3, min_amount: 100000000,
        cooldown_days: 30, high_value_from: gold}
max_lateness_days: 2
currencies: {USD: "7.1"}
"""


def ladder(grace: int) -> str:
    return LADDER % {"grace": grace}


def balance(eid: str, ts: str, amount: Any, customer: str = "A", account: str = "A1", **extra: Any) -> str:
    return json.dumps(
        {
            "topic": "bank.balances",
            "value": {
                "event_id": eid,
                "customer_id": customer,
                "account_id": account,
                "product": "deposit",
                "balance": amount,
                "ts": ts,
                **extra,
            },
        }
    )


def txn(
    eid: str, ts: str, amount: str, direction: str, channel: str, customer: str = "A", **extra: Any
) -> str:
    return json.dumps(
        {
            "topic": "bank.transactions",
            "value": {
                "event_id": eid,
                "customer_id": customer,
                "account_id": "A1",
                "amount": amount,
                "direction": direction,
                "channel": channel,
                "ts": ts,
                **extra,
            },
        }
    )


def profile(eid: str, ts: str, customer: str, **attributes: Any) -> str:
    return json.dumps(
        {
            "topic": "bank.profiles",
            "value": {"event_id": eid, "customer_id": customer, "ts": ts, "attributes": attributes},
        }
    )


def summary(outputs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """A compact view of non-DLQ outputs: (customer, effective_at, what...)."""
    rows: list[tuple[Any, ...]] = []
    for o in outputs:
        v = o["value"]
        if o["topic"] == "tier.changes":
            rows.append(
                (
                    v["customer_id"],
                    v["effective_at"],
                    "tier",
                    v["from_tier"],
                    v["to_tier"],
                    v["direction"],
                    v["matched"],
                    v["metrics"],
                )
            )
        elif o["topic"] == "tier.opportunities":
            rows.append(
                (
                    v["customer_id"],
                    v["effective_at"],
                    "opportunity",
                    v["current_tier"],
                    v["target_tier"],
                    v["metric"],
                    v["value"],
                    v["threshold"],
                    v["gap"],
                )
            )
        elif o["topic"] == "customer.churn-warnings":
            rows.append(
                (
                    v["customer_id"],
                    v["effective_at"],
                    "churn",
                    v["tier"],
                    v["reason"],
                    v["severity"],
                    v["metrics"],
                )
            )
    return rows


def sha_id(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()[:32]


def test_grace_zero_downgrades_at_once_and_skips_tiers() -> None:
    # 5000 qualifies for gold (skipping silver); 50 falls to base and, with grace 0,
    # D - below_since = 0 >= 0 downgrades at the same instant. matched is null for the base tier.
    lines = [
        balance("e1", "2026-03-01T10:00:00+08:00", "5000"),
        balance("e2", "2026-03-01T12:00:00+08:00", "50"),
    ]
    outputs, stats = reference_simulate(ladder(0), lines)
    assert summary(outputs) == [
        (
            "A",
            "2026-03-01T10:00:00+08:00",
            "tier",
            "base",
            "gold",
            "upgrade",
            "aum >= 1000",
            {"aum": "5000.00"},
        ),
        ("A", "2026-03-01T12:00:00+08:00", "tier", "gold", "base", "downgrade", None, {"aum": "50.00"}),
    ]
    assert stats == {"outcomes": {"applied": 2, "duplicate": 0, "dead_letter": 0}, "dead_letters": {}}
    first = outputs[0]["value"]
    assert list(first) == [
        "type",
        "schema_version",
        "event_id",
        "customer_id",
        "effective_at",
        "rules_version",
        "from_tier",
        "to_tier",
        "direction",
        "matched",
        "metrics",
    ]
    assert first["event_id"] == sha_id("tier_changed", "A", "base", "gold", "2026-03-01T10:00:00+08:00", "h1")


def test_skip_two_tiers_up_and_downgrade_to_a_middle_tier() -> None:
    # 20000 -> top directly; 500 -> Q = silver, grace 0: top -> silver, matched is silver's condition.
    lines = [
        balance("e1", "2026-03-01T10:00:00+08:00", "20000"),
        balance("e2", "2026-03-01T11:00:00+08:00", "500"),
    ]
    outputs, _ = reference_simulate(ladder(0), lines)
    assert summary(outputs) == [
        (
            "A",
            "2026-03-01T10:00:00+08:00",
            "tier",
            "base",
            "top",
            "upgrade",
            "aum >= 10000",
            {"aum": "20000.00"},
        ),
        (
            "A",
            "2026-03-01T11:00:00+08:00",
            "tier",
            "top",
            "silver",
            "downgrade",
            "aum >= 100",
            {"aum": "500.00"},
        ),
    ]


def test_grace_n_downgrades_at_the_boundary_to_the_current_qualified_tier() -> None:
    # grace 2. Mar 1 12:00 falls to base: below_since = Mar 1. Mar 2 (boundary, then 09:00 at 500:
    # Q = silver, still below gold): 1 < 2. Mar 3 boundary: 2 >= 2 -> downgrade to Q = silver.
    lines = [
        balance("e1", "2026-03-01T10:00:00+08:00", "5000"),
        balance("e2", "2026-03-01T12:00:00+08:00", "50"),
        balance("e3", "2026-03-02T09:00:00+08:00", "500"),
    ]
    outputs, _ = reference_simulate(ladder(2), lines, until="2026-03-05T00:00:00+08:00")
    assert summary(outputs) == [
        (
            "A",
            "2026-03-01T10:00:00+08:00",
            "tier",
            "base",
            "gold",
            "upgrade",
            "aum >= 1000",
            {"aum": "5000.00"},
        ),
        (
            "A",
            "2026-03-03T00:00:00+08:00",
            "tier",
            "gold",
            "silver",
            "downgrade",
            "aum >= 100",
            {"aum": "500.00"},
        ),
    ]


def test_recovery_during_grace_forgets_below_since() -> None:
    # grace 2. below since Mar 1 12:00; Mar 2 09:00 back at gold (Q >= T: forget); Mar 2 10:00 falls
    # again: below_since = Mar 2, so the downgrade is at the Mar 4 boundary, not Mar 3.
    lines = [
        balance("e1", "2026-03-01T10:00:00+08:00", "5000"),
        balance("e2", "2026-03-01T12:00:00+08:00", "50"),
        balance("e3", "2026-03-02T09:00:00+08:00", "2000"),
        balance("e4", "2026-03-02T10:00:00+08:00", "50"),
    ]
    outputs, _ = reference_simulate(ladder(2), lines, until="2026-03-06T00:00:00+08:00")
    assert summary(outputs) == [
        (
            "A",
            "2026-03-01T10:00:00+08:00",
            "tier",
            "base",
            "gold",
            "upgrade",
            "aum >= 1000",
            {"aum": "5000.00"},
        ),
        ("A", "2026-03-04T00:00:00+08:00", "tier", "gold", "base", "downgrade", None, {"aum": "50.00"}),
    ]


def test_late_events_lateness_limit_and_latest_observation_wins() -> None:
    # max_lateness_days 2, grace 0.
    # 0: A at 500 -> silver (Mar 1 10:00).
    # 1: B on Mar 5 moves the clock: A's boundaries Mar 2..5 are evaluated (nothing changes).
    # 2: A, Mar 4 (1 day late): applied; t = max(Mar 4 10:00, A's last instant = Mar 5 00:00),
    #    as of Mar 5: closing balance = 5000 -> gold at 2026-03-05T00:00.
    # 3: A, Mar 2 (3 days late > 2): too_late.
    # 4: A, Mar 3 (exactly 2 days late): applied, but the account's latest observation by ts is
    #    still the Mar 4 one, so aum stays 5000: no output.
    lines = [
        balance("e1", "2026-03-01T10:00:00+08:00", "500"),
        balance("b1", "2026-03-05T10:00:00+08:00", "50", customer="B", account="B1"),
        balance("e2", "2026-03-04T10:00:00+08:00", "5000"),
        balance("e3", "2026-03-02T10:00:00+08:00", "99999"),
        balance("e4", "2026-03-03T10:00:00+08:00", "20000"),
    ]
    outputs, stats = reference_simulate(ladder(0), lines)
    assert summary(outputs) == [
        (
            "A",
            "2026-03-01T10:00:00+08:00",
            "tier",
            "base",
            "silver",
            "upgrade",
            "aum >= 100",
            {"aum": "500.00"},
        ),
        (
            "A",
            "2026-03-05T00:00:00+08:00",
            "tier",
            "silver",
            "gold",
            "upgrade",
            "aum >= 1000",
            {"aum": "5000.00"},
        ),
    ]
    assert stats == {
        "outcomes": {"applied": 4, "duplicate": 0, "dead_letter": 1},
        "dead_letters": {"too_late": 1},
    }
    dlq = [o["value"] for o in outputs if o["topic"] == DLQ]
    assert [(r["offset"], r["key"], r["source_topic"], r["error"]) for r in dlq] == [
        (3, "A", "bank.balances", "too_late")
    ]


AVG_LADDER = """
version: "h2"
tiers:
  - {id: base}
  - {id: gold, any_of: ["avg_aum_2d >= 1000"]}
downgrade: {grace_days: 0}
opportunity: {ratio: 0.6, cooldown_days: 30}
churn: {dormant_after_days: 1000, min_amount: 100000000}
max_lateness_days: 2
"""


def test_customer_first_seen_through_a_late_event() -> None:
    # 0: B on Mar 5 at 10: avg_aum_2d = (0 + 10) / 2 = 5, nothing.
    # 1: C first seen through a Mar 3 event (2 days late, allowed). Evaluated at its ts as of Mar 3:
    #    avg = (Mar 2 before first sight = 0 + 1500) / 2 = 750, in [0.6 x 1000, 1000): opportunity.
    #    Then C's boundaries after its first day up to the clock's day: Mar 4: (1500 + 1500) / 2
    #    -> gold; Mar 5: nothing new.
    # 2: B at 1200 (Mar 5 11:00): avg = (0 + 1200) / 2 = 600 = 0.6 x 1000: opportunity.
    # until Mar 6: B's Mar 6 boundary: 1200 -> gold. C: gold is the top tier, nothing.
    lines = [
        balance("b1", "2026-03-05T10:00:00+08:00", "10", customer="B", account="B1"),
        balance("c1", "2026-03-03T09:00:00+08:00", "1500", customer="C", account="C1"),
        balance("b2", "2026-03-05T11:00:00+08:00", "1200", customer="B", account="B1"),
    ]
    outputs, stats = reference_simulate(AVG_LADDER, lines, until="2026-03-06T00:00:00+08:00")
    metrics_1500 = {"aum": "1500.00", "avg_aum_2d": "1500.00"}
    assert summary(outputs) == [
        (
            "C",
            "2026-03-03T09:00:00+08:00",
            "opportunity",
            "base",
            "gold",
            "avg_aum_2d",
            "750.00",
            "1000.00",
            "250.00",
        ),
        (
            "C",
            "2026-03-04T00:00:00+08:00",
            "tier",
            "base",
            "gold",
            "upgrade",
            "avg_aum_2d >= 1000",
            metrics_1500,
        ),
        (
            "B",
            "2026-03-05T11:00:00+08:00",
            "opportunity",
            "base",
            "gold",
            "avg_aum_2d",
            "600.00",
            "1000.00",
            "400.00",
        ),
        (
            "B",
            "2026-03-06T00:00:00+08:00",
            "tier",
            "base",
            "gold",
            "upgrade",
            "avg_aum_2d >= 1000",
            {"aum": "1200.00", "avg_aum_2d": "1200.00"},
        ),
    ]
    assert stats["outcomes"] == {"applied": 3, "duplicate": 0, "dead_letter": 0}
    opp = outputs[0]["value"]
    assert list(opp) == [
        "type",
        "schema_version",
        "event_id",
        "customer_id",
        "effective_at",
        "rules_version",
        "current_tier",
        "target_tier",
        "metric",
        "value",
        "threshold",
        "gap",
    ]
    assert opp["event_id"] == sha_id(
        "upgrade_opportunity", "C", "base", "gold", "2026-03-03T09:00:00+08:00", "h2"
    )


def test_duplicates_are_counted_not_applied() -> None:
    # 1: the same record again: duplicate. 2: same event_id, different (valid) content: duplicate,
    # so no upgrade to gold. 3: same id but malformed: dead-lettered (checked before duplicates).
    # 4: the same event_id for another customer is a different event: applied.
    lines = [
        balance("e1", "2026-03-01T10:00:00+08:00", "500"),
        balance("e1", "2026-03-01T10:00:00+08:00", "500"),
        balance("e1", "2026-03-01T10:00:00+08:00", "5000"),
        balance("e1", "2026-03-01T10:00:00+08:00", "abc"),
        "",
        balance("e1", "2026-03-01T10:00:00+08:00", "50", customer="Z", account="Z1"),
    ]
    outputs, stats = reference_simulate(ladder(0), lines)
    assert summary(outputs) == [
        (
            "A",
            "2026-03-01T10:00:00+08:00",
            "tier",
            "base",
            "silver",
            "upgrade",
            "aum >= 100",
            {"aum": "500.00"},
        ),
    ]
    assert stats == {
        "outcomes": {"applied": 2, "duplicate": 2, "dead_letter": 1},
        "dead_letters": {"bad_amount": 1},
    }
    dlq = [o["value"] for o in outputs if o["topic"] == DLQ]
    assert [(r["offset"], r["key"], r["error"]) for r in dlq] == [(3, "A", "bad_amount")]


CHURN_RULES = """
version: "h3"
home_bank: HOME
tiers:
  - {id: base}
  - {id: gold, any_of: ["aum >= 1000"]}
downgrade: {grace_days: 30}
churn: {dormant_after_days: 3, drop_ratio: 0.5, outflow_ratio: 0.3, min_amount: 100,
        cooldown_days: 5, high_value_from: gold}
"""


def test_churn_external_outflow_dormant_and_severity() -> None:
    # A: 2000 -> gold. A 700 transfer to another bank leaves 1300: outflow_7d 700 >= 100 and
    #    >= 0.3 x (1300 + 700) = 600 -> external_outflow (high: gold). Mar 2: a 100 debit to HOME
    #    (not external; activity). Boundaries up to Mar 8 (A first, then Z: first-seen order):
    #    Mar 5: inactive 3 -> dormant (high); Mar 6: cooldown 5 over -> external_outflow again
    #    (the Mar 1 debit is still in [Feb 28, Mar 6]); Mar 7 in cooldown; Mar 8 outside window.
    #    Balance drop never: peak 1300, aum 1300.
    # Z: a profile only (not activity): dormant at Mar 4 (3 days after first sight), base: low.
    lines = [
        balance("e1", "2026-03-01T10:00:00+08:00", "2000"),
        txn(
            "e2",
            "2026-03-01T11:00:00+08:00",
            "700",
            "debit",
            "transfer",
            counterparty_bank="OTHER",
            balance_after="1300",
        ),
        profile("z1", "2026-03-01T12:00:00+08:00", "Z", segment="x"),
        txn("e3", "2026-03-02T10:00:00+08:00", "100", "debit", "mobile", counterparty_bank="HOME"),
    ]
    outputs, _ = reference_simulate(CHURN_RULES, lines, until="2026-03-08T00:00:00+08:00")

    def m(aum: str, inactive: int, outflow: str) -> dict[str, Any]:
        return {"aum": aum, "inactive_days": inactive, "external_outflow_7d": outflow}

    assert summary(outputs) == [
        (
            "A",
            "2026-03-01T10:00:00+08:00",
            "tier",
            "base",
            "gold",
            "upgrade",
            "aum >= 1000",
            {"aum": "2000.00"},
        ),
        (
            "A",
            "2026-03-01T11:00:00+08:00",
            "churn",
            "gold",
            "external_outflow",
            "high",
            m("1300.00", 0, "700.00"),
        ),
        ("A", "2026-03-05T00:00:00+08:00", "churn", "gold", "dormant", "high", m("1300.00", 3, "700.00")),
        (
            "A",
            "2026-03-06T00:00:00+08:00",
            "churn",
            "gold",
            "external_outflow",
            "high",
            m("1300.00", 4, "700.00"),
        ),
        ("Z", "2026-03-04T00:00:00+08:00", "churn", "base", "dormant", "low", m("0.00", 3, "0.00")),
    ]
    warning = outputs[1]["value"]
    assert list(warning) == [
        "type",
        "schema_version",
        "event_id",
        "customer_id",
        "effective_at",
        "rules_version",
        "tier",
        "reason",
        "severity",
        "metrics",
    ]
    assert warning["event_id"] == sha_id(
        "churn_warning", "A", "external_outflow", "2026-03-01T11:00:00+08:00", "h3"
    )


def test_currency_conversion_floors_to_the_fen() -> None:
    # rate 7.1: 1.00 USD = 100 x 7.1 = 710 fen; 0.99 USD = 702.9 -> 702 fen (floor).
    rules = ladder(0).replace('"aum >= 100"', '"aum >= 7.10"')
    lines = [
        balance("e1", "2026-03-01T10:00:00+08:00", "1.00", currency="USD"),
        balance("e2", "2026-03-01T11:00:00+08:00", "0.99", currency="USD"),
    ]
    outputs, _ = reference_simulate(rules, lines)
    assert summary(outputs) == [
        (
            "A",
            "2026-03-01T10:00:00+08:00",
            "tier",
            "base",
            "silver",
            "upgrade",
            "aum >= 7.10",
            {"aum": "7.10"},
        ),
        ("A", "2026-03-01T11:00:00+08:00", "tier", "silver", "base", "downgrade", None, {"aum": "7.02"}),
    ]


def test_utc_input_is_shown_in_the_rules_timezone() -> None:
    # 2026-03-01T17:00:00Z is 2026-03-02T01:00+08:00: business day Mar 2.
    lines = [balance("e1", "2026-03-01T17:00:00Z", "500")]
    outputs, _ = reference_simulate(ladder(0), lines)
    assert summary(outputs)[0][1] == "2026-03-02T01:00:00+08:00"


@pytest.mark.parametrize(
    ("line", "error", "source_topic", "key"),
    [
        ("this is not json", "invalid_json", None, None),
        ('{"topic":"bank.balances","value":"{\\"event_id\\": "}', "invalid_json", "bank.balances", None),
        ('{"topic":"bank.other","value":{}}', "schema_violation", "bank.other", None),
        ('{"topic":"bank.balances","value":"[1]"}', "schema_violation", "bank.balances", None),
        (
            balance("x", "2026-03-01T10:00:00+08:00", "1", currency="EUR"),
            "schema_violation",
            "bank.balances",
            "A",
        ),
        (balance("x", "2026-03-01T10:00:00+08:00", None), "schema_violation", "bank.balances", "A"),
        (balance("x", "2026-03-01T10:00:00+08:00", True), "schema_violation", "bank.balances", "A"),
        (balance("x", "2026-03-01T10:00:00+08:00", "12.345"), "bad_amount", "bank.balances", "A"),
        (balance("x", "2026-13-01T10:00:00+08:00", "1"), "schema_violation", "bank.balances", "A"),
        (balance("", "2026-03-01T10:00:00+08:00", "1"), "schema_violation", "bank.balances", "A"),
        (balance("x" * 129, "2026-03-01T10:00:00+08:00", "1"), "schema_violation", "bank.balances", "A"),
        (txn("x", "2026-03-01T10:00:00+08:00", "0", "debit", "pos"), "bad_amount", "bank.transactions", "A"),
        (
            txn("x", "2026-03-01T10:00:00+08:00", "1", "sideways", "pos"),
            "schema_violation",
            "bank.transactions",
            "A",
        ),
        (
            txn("x", "2026-03-01T10:00:00+08:00", "1", "debit", "pos", product="loan", balance_after="-1"),
            "bad_amount",
            "bank.transactions",
            "A",
        ),
        (profile("x", "2026-03-01T10:00:00+08:00", "A", vip=None), "schema_violation", "bank.profiles", "A"),
    ],
)
def test_single_bad_records(line: str, error: str, source_topic: str | None, key: str | None) -> None:
    outputs, stats = reference_simulate(ladder(0), [line])
    assert stats["outcomes"] == {"applied": 0, "duplicate": 0, "dead_letter": 1}
    assert stats["dead_letters"] == {error: 1}
    (record,) = [o["value"] for o in outputs]
    assert (record["error"], record["source_topic"], record["key"], record["offset"]) == (
        error,
        source_topic,
        key,
        0,
    )


def test_future_timestamp_only_against_now() -> None:
    lines = [
        balance("e1", "2026-03-01T10:05:00+08:00", "1"),  # exactly now + 5 min: applied
        balance("e2", "2026-03-01T10:05:01+08:00", "1"),
    ]  # more than 5 min ahead
    _, stats = reference_simulate(ladder(0), lines, now="2026-03-01T10:00:00+08:00")
    assert stats == {
        "outcomes": {"applied": 1, "duplicate": 0, "dead_letter": 1},
        "dead_letters": {"future_timestamp": 1},
    }
    _, stats = reference_simulate(ladder(0), lines)
    assert stats["outcomes"]["applied"] == 2


def test_oversize_is_checked_before_json() -> None:
    rules = ladder(0) + "max_record_bytes: 40\n"
    big = json.dumps({"topic": "bank.balances", "value": "x" * 41})  # not JSON either
    ok = json.dumps({"topic": "bank.balances", "value": "y" * 40})
    _, stats = reference_simulate(rules, [big, ok])
    assert stats["dead_letters"] == {"oversize": 1, "invalid_json": 1}


@pytest.mark.parametrize(
    "bad",
    [
        'tiers: [{id: base}, {id: g, any_of: ["avg_aum_0d >= 1"]}]',
        'tiers: [{id: base}, {id: g, any_of: ["avg_aum_367d >= 1"]}]',
        'tiers: [{id: base}, {id: g, any_of: ["wealth_30d >= 1"]}]',
        'tiers: [{id: base}, {id: g, any_of: ["aum >= __import__"]}]',
        'tiers: [{id: base}, {id: g, any_of: ["aum"]}]',
        'tiers: [{id: base}, {id: base, any_of: ["aum >= 1"]}]',
    ],
)
def test_bad_rules_are_refused(bad: str) -> None:
    with pytest.raises(RulesError):
        parse_rules('version: "x"\n' + bad + "\n")
