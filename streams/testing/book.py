"""Event files built in code, and the engine run over them in-process (the unit tests' and
the property tests' way of writing a bank's history)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..contract import BALANCES, PROFILES, TRANSACTIONS
from ..engine.rules import Rules
from ..engine.timeutil import parse_instant
from ..tools.simulate import simulate

__all__ = ["Book", "of_type", "run", "strip_wall"]


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
