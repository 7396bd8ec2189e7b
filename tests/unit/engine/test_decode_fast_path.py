"""The one-pass decode of balances and transactions gives what the checked path gives:
the same event for every record it accepts, the same refusal (code and detail) otherwise."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from tierstream.engine.decode import BALANCES, TRANSACTIONS, BadRecord, Decoder
from tierstream.engine.jsonio import JsonNumber
from tierstream.tools.generate import generate_events

DECODER = Decoder({"USD": (7, 1)})
#: a value each field may be replaced by (None: the field removed)
REPLACEMENTS: list[Any] = [
    None,
    "",
    "x",
    "\u0007",
    "12.345",
    "-5.00",
    "0",
    "0.00",
    "100",
    "2026-01-01T00:00:00",
    "2026-02-30T00:00:00+08:00",
    "2026-01-01T00:00:00Z",
    "USD",
    "CNY",
    "EUR",
    "loan",
    "credit_card",
    "debit",
    "pos",
    7,
    0,
    True,
    JsonNumber("12.50"),
    Decimal("1.005"),
    ["deposit"],
    {"a": 1},
]
REMOVED = object()


def _records() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for line in generate_events(20, 3, seed=5, usd=True):
        if line["topic"] in (BALANCES, TRANSACTIONS) and isinstance(line["value"], dict):
            out.append((line["topic"], line["value"]))
    return out


def _outcome(call: Any, value: dict[str, Any]) -> Any:
    try:
        return call(value)
    except BadRecord as bad:
        return (bad.error, bad.detail)


def _pair(topic: str) -> tuple[Any, Any]:
    if topic == BALANCES:
        return DECODER._balance, DECODER._balance_checked
    return DECODER._transaction, DECODER._transaction_checked


@pytest.mark.parametrize("topic", [BALANCES, TRANSACTIONS])
def test_fast_decode_equals_the_checked_decode(topic: str) -> None:
    records = [v for t, v in _records() if t == topic]
    assert records
    fast, checked = _pair(topic)
    fields = sorted(
        {*records[0], "currency", "balance_after", "counterparty_bank", "product", "balance", "amount"}
    )
    compared = refused = 0
    for value in records[:40]:
        assert fast(value) == checked(value)
        for name in fields:
            for replacement in [REMOVED, *REPLACEMENTS]:
                changed = copy.deepcopy(value)
                if replacement is REMOVED:
                    changed.pop(name, None)
                else:
                    changed[name] = replacement
                got, want = _outcome(fast, changed), _outcome(checked, changed)
                assert got == want, (name, replacement, changed)
                compared += 1
                refused += isinstance(want, tuple)
    assert 0 < refused < compared  # both outcomes were exercised
