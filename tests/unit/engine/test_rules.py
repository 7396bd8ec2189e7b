"""The rules loader: presets load, and every refusal names the file, the line and a fix."""

from __future__ import annotations

import textwrap
from decimal import Decimal

import pytest

from tierstream.engine.rules import PRESETS, RulesError, load_rules, parse_condition, parse_rules

GOOD = """\
scheme: s
version: "v1"
tiers:
  - {id: base}
  - {id: gold, any_of: ["avg_aum_30d >= 50000"]}
"""


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load(name: str) -> None:
    rules = load_rules(name)
    assert rules.tiers[0].any_of == ()
    assert all(t.any_of for t in rules.tiers[1:])
    assert rules.warnings == ()


def test_psbc_preset_is_any_of_on_balance_card_and_income() -> None:
    rules = load_rules("psbc")
    gold = rules.tiers[1]
    assert [c.text for c in gold.any_of] == [
        "avg_aum_30d >= 50000",
        "attr.high_end_card == true",
        "attr.household_income >= 200000",
    ]
    assert gold.any_of[0].literal == 5_000_000  # money compares in fen
    assert gold.any_of[2].literal == 200000  # attributes compare as plain numbers


def test_defaults() -> None:
    rules = parse_rules(GOOD)
    assert (rules.timezone, rules.max_lateness_days, rules.grace_days) == ("Asia/Shanghai", 7, 30)
    assert rules.high_value_from == len(rules.tiers)  # not given: no tier is high value


@pytest.mark.parametrize(
    ("text", "metric", "op", "literal"),
    [
        ("avg_aum_30d >= 50000", "avg_aum_30d", ">=", 5_000_000),
        ("avg_loan_365d>500000.5", "avg_loan_365d", ">", 50_000_050),
        ("txn_count_7d < 3", "txn_count_7d", "<", 3),
        ("inactive_days >= 90", "inactive_days", ">=", 90),
        ("attr.segment == 'private'", "attr.segment", "==", "private"),
        ('attr.segment != "mass"', "attr.segment", "!=", "mass"),
        ("attr.vip == false", "attr.vip", "==", False),
        ("attr.income >= 1.5", "attr.income", ">=", Decimal("1.5")),
        ("external_outflow_366d <= 0", "external_outflow_366d", "<=", 0),
    ],
)
def test_conditions_parse(text: str, metric: str, op: str, literal: object) -> None:
    cond = parse_condition(text)
    assert (cond.metric.name, cond.op, cond.literal) == (metric, op, literal)
    assert type(cond.literal) is type(literal)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("avg_aum_0d >= 1", "bad window"),
        ("avg_aum_367d >= 1", "bad window"),
        ("avg_aum_030d >= 1", "bad window"),
        ("avg_balance_30d >= 1", "unknown metric"),
        ("__import__('os') >= 1", "unknown metric"),
        ("avg_aum_30d => 1", "malformed condition"),
        ("avg_aum_30d >= ", "malformed condition"),
        ("avg_aum_30d", "malformed condition"),
        ("avg_aum_30d >= 1 or 1", "bad literal"),
        ("avg_aum_30d >= true", "compares the number"),
        ("avg_aum_30d >= 0.001", "whole fen"),
        ("attr.vip > true", "booleans take only"),
    ],
)
def test_bad_conditions(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_condition(text)


@pytest.mark.parametrize(
    ("body", "line", "reason"),
    [
        (
            """\
scheme: s
version: "v1"
tiers:
  - {id: base}
  - {id: gold, any_of: ["avg_aum_30d >= 50000"]}
  - {id: gold, any_of: ["avg_aum_30d >= 90000"]}
""",
            6,
            "duplicate tier 'gold'",
        ),
        (
            """\
scheme: s
version: "v1"
tiers:
  - {id: base}
  - id: gold
    any_of:
      - "avg_aum_30d >= 50000"
      - "avg_aum_45x >= 50000"
""",
            8,
            "unknown metric 'avg_aum_45x'",
        ),
        (
            """\
scheme: s
version: "v1"
tiers:
  - {id: base}
  - {id: gold, any_of: ["avg_aum_400d >= 50000"]}
""",
            5,
            "bad window",
        ),
        (
            """\
scheme: s
version: "v1"
tiers:
  - {id: base, any_of: ["aum >= 1"]}
""",
            4,
            "base tier 'base' always qualifies",
        ),
        (
            """\
scheme: s
version: "v1"
timezone: Mars/Olympus
tiers: [{id: base}]
""",
            3,
            "unknown timezone",
        ),
        (
            """\
scheme: s
version: "v1"
tiers: [{id: base}, {id: gold, any_of: ["aum >= 1"]}]
churn: {high_value_from: platinum}
""",
            4,
            "not a tier",
        ),
        (
            """\
scheme: s
version: "v1"
tiers: [{id: base}]
downgrade: {grace_days: -1}
""",
            4,
            "whole number",
        ),
        (
            """\
scheme: s
tiers: [{id: base}]
""",
            1,
            "missing 'version'",
        ),
        (
            """\
scheme: s
version: "v1"
tiers: [{id: base}
""",
            4,
            "not valid YAML",
        ),
    ],
)
def test_refusals_name_file_line_and_reason(body: str, line: int, reason: str) -> None:
    with pytest.raises(RulesError) as info:
        parse_rules(body, "bank.yaml")
    assert info.value.line == line
    assert reason in str(info.value)
    assert str(info.value).startswith(f"bank.yaml:{line}: ")


def test_unknown_keys_are_warnings_with_lines() -> None:
    rules = parse_rules(GOOD + "downgrad: {grace_days: 3}\n", "bank.yaml")
    assert rules.warnings == (
        "bank.yaml:6: warning: unknown key 'downgrad' ignored; expected one of churn, clock_lag_seconds, "
        "currencies, downgrade, home_bank, max_lateness_days, max_record_bytes, opportunity, scheme, segments, "
        "tiers, timezone, version",
    )


def test_missing_file_names_presets(tmp_path: object) -> None:
    with pytest.raises(RulesError, match="no such rules file; give a path or a preset name"):
        load_rules("/nonexistent/rules.yaml")


def test_output_metrics_in_order_of_first_appearance() -> None:
    rules = parse_rules(
        textwrap.dedent("""\
        scheme: s
        version: "v1"
        tiers:
          - {id: a}
          - {id: b, any_of: ["spend_365d >= 1", "avg_aum_30d >= 1"]}
          - {id: c, any_of: ["avg_aum_30d >= 2", "aum >= 5", "attr.x == 'y'"]}
        """)
    )
    assert [m.name for m in rules.output_metrics()] == ["aum", "spend_365d", "avg_aum_30d", "attr.x"]
    assert [m.name for m in rules.churn_metrics()][-2:] == ["inactive_days", "external_outflow_7d"]


def test_a_tier_below_a_lower_threshold_is_unreachable() -> None:
    body = (
        'scheme: s\nversion: "1"\ntiers:\n  - {id: base}\n'
        '  - {id: sunflower, any_of: ["avg_aum_30d >= 500000"]}\n'
        '  - {id: diamond, any_of: ["avg_aum_30d >= 400000"]}\n'
    )
    with pytest.raises(RulesError, match=r"f\.yaml:5: tier sunflower can never be reached") as info:
        parse_rules(body, "f.yaml")
    assert "higher tier diamond ('avg_aum_30d >= 400000')" in str(info.value)


def test_a_tier_with_another_way_in_is_reachable() -> None:
    body = (
        'scheme: s\nversion: "1"\ntiers:\n  - {id: base}\n'
        '  - {id: gold, any_of: ["avg_aum_30d >= 500000", "attr.vip == true"]}\n'
        '  - {id: diamond, any_of: ["avg_aum_30d >= 400000"]}\n'
    )
    assert [t.id for t in parse_rules(body, "f.yaml").tiers] == ["base", "gold", "diamond"]


@pytest.mark.parametrize(
    ("body", "fix"),
    [
        ('scheme: s\nversion: "1"\ntiers:\n  - id: a\n   label: b\n', "check the indentation at line 5"),
        ('scheme: s\nversion: "1"\ntiers:\n\t- id: a\n', "replace the tab at line 4"),
    ],
)
def test_yaml_errors_say_how_to_fix_them(body: str, fix: str) -> None:
    with pytest.raises(RulesError, match=fix):
        parse_rules(body, "f.yaml")


def test_a_folder_is_not_a_rules_file(tmp_path: object) -> None:
    with pytest.raises(RulesError, match="is a folder, not a rules file"):
        load_rules(str(tmp_path))
