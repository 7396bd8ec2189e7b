"""Event files built in code, and the engine run over them in-process (the unit tests' and
the property tests' way of writing a bank's history)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..contract import BALANCES, PROFILES, TRANSACTIONS
from ..engine.rules import Rules, parse_rules
from ..engine.timeutil import parse_instant
from ..tools.simulate import simulate

__all__ = ["BASE_RULES", "Book", "make_rules", "of_type", "run", "strip_wall"]


#: a small ladder whose grace, cooldowns, dormancy and lateness a test sets (`make_rules`)
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


class Book:
    """Builds an event file for one or more customers."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.n = 0

    def _id(self) -> str:
        self.n += 1
        return f"e{self.n}"

    def balance(
        self,
        ts: str,
        amount: str,
        customer: str = "A",
        account: str = "A1",
        product: str = "deposit",
        **extra: Any,
    ) -> Book:
        self.lines.append(
            {
                "topic": BALANCES,
                "value": {
                    "event_id": extra.pop("event_id", self._id()),
                    "customer_id": customer,
                    "account_id": account,
                    "product": product,
                    "balance": amount,
                    "ts": ts,
                    **extra,
                },
            }
        )
        return self

    def txn(
        self,
        ts: str,
        amount: str,
        direction: str = "debit",
        channel: str = "mobile",
        customer: str = "A",
        account: str = "A1",
        **extra: Any,
    ) -> Book:
        self.lines.append(
            {
                "topic": TRANSACTIONS,
                "value": {
                    "event_id": extra.pop("event_id", self._id()),
                    "customer_id": customer,
                    "account_id": account,
                    "amount": amount,
                    "direction": direction,
                    "channel": channel,
                    "ts": ts,
                    **extra,
                },
            }
        )
        return self

    def profile(self, ts: str, customer: str = "A", **attributes: Any) -> Book:
        self.lines.append(
            {
                "topic": PROFILES,
                "value": {
                    "event_id": self._id(),
                    "customer_id": customer,
                    "ts": ts,
                    "attributes": attributes,
                },
            }
        )
        return self

    def raw(self, topic: str, text: str) -> Book:
        self.lines.append({"topic": topic, "value": text})
        return self

    def encoded(self) -> list[bytes]:
        return [json.dumps(line, ensure_ascii=False).encode("utf-8") for line in self.lines]


def strip_wall(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in ("emitted_at", "at")}


def run(
    rules: Rules, lines: Iterable[bytes], until: str | None = None, now: str | None = None
) -> tuple[list[tuple[str, dict[str, Any]]], Any]:
    outputs: list[tuple[str, dict[str, Any]]] = []
    engine = simulate(
        rules,
        [(i, ln) for i, ln in enumerate(lines) if ln.strip()],
        lambda o: outputs.append((o[0], strip_wall(o[2]))),
        until=parse_instant(until) if until else None,
        now=parse_instant(now) if now else None,
    )
    return outputs, engine


def of_type(outputs: list[tuple[str, dict[str, Any]]], topic: str) -> list[dict[str, Any]]:
    return [v for t, v in outputs if t == topic]
