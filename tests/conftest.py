"""Shared test helpers: build events and run the engine in-process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tierstream.engine.rules import Rules, parse_rules

FIXTURES = Path(__file__).parent / "fixtures"

BASE_RULES = """
scheme: test
version: "t1"
timezone: Asia/Shanghai
home_bank: HOME
tiers:
  - {id: base}
  - {id: gold, any_of: ["avg_aum_30d >= 50000"]}
  - {id: plat, any_of: ["avg_aum_30d >= 300000", "attr.vip == true"]}
  - {id: top, any_of: ["avg_aum_30d >= 1000000"]}
downgrade: {grace_days: %(grace)s}
opportunity: {ratio: 0.6, cooldown_days: %(opp_cooldown)s}
churn: {dormant_after_days: %(dormant)s, drop_ratio: 0.5, outflow_ratio: 0.3,
        min_amount: 50000, cooldown_days: %(churn_cooldown)s, high_value_from: plat}
max_lateness_days: %(lateness)s
currencies: {USD: "7.1"}
"""


def make_rules(**overrides: Any) -> Rules:
    params = {"grace": 10, "opp_cooldown": 30, "dormant": 30, "churn_cooldown": 30, "lateness": 7}
    params.update(overrides)
    return parse_rules(BASE_RULES % params, "test-rules")


__all__ = ["FIXTURES", "make_rules"]
