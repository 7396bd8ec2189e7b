"""Hypothesis strategies shared by property tests: random event books."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from hypothesis import strategies as st

from .book import Book

START = date(2026, 1, 1)


def ts(day: int, second: int) -> str:
    d = START + timedelta(days=day)
    return f"{d.isoformat()}T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}+08:00"


@st.composite
def histories(draw: st.DrawFn, max_events: int = 60) -> list[bytes]:
    """Random books: 1-3 customers, mixed products, some late events and redeliveries."""
    n = draw(st.integers(min_value=1, max_value=max_events))
    book = Book()
    day = 0
    for _ in range(n):
        day += draw(st.sampled_from([0, 0, 0, 1, 1, 2, 5, 13, 40]))
        event_day = day - draw(st.sampled_from([0, 0, 0, 0, 0, 1, 3, 7, 8]))  # late sometimes
        when = ts(max(event_day, 0), draw(st.integers(min_value=0, max_value=86_399)))
        customer = draw(st.sampled_from(["A", "B", "C"]))
        account = f"{customer}{draw(st.integers(min_value=1, max_value=3))}"
        kind = draw(st.sampled_from(["balance", "balance", "txn", "txn", "profile", "dup"]))
        amount = f"{draw(st.integers(min_value=0, max_value=3_000_000))}.{draw(st.integers(0, 99)):02d}"
        if kind == "balance":
            product = draw(st.sampled_from(["deposit", "wealth", "loan", "credit_card", "fund"]))
            book.balance(when, amount, customer=customer, account=account, product=product)
        elif kind == "txn":
            extra: dict[str, Any] = {}
            if draw(st.booleans()):
                extra["balance_after"] = amount
            if draw(st.booleans()):
                extra["counterparty_bank"] = draw(st.sampled_from(["HOME", "ICBC"]))
            book.txn(
                when,
                f"{draw(st.integers(1, 200_000))}.00",
                direction=draw(st.sampled_from(["debit", "credit"])),
                channel=draw(st.sampled_from(["pos", "atm", "system", "mobile"])),
                customer=customer,
                account=account,
                **extra,
            )
        elif kind == "profile":
            book.profile(when, customer=customer, vip=draw(st.booleans()))
        elif book.lines:
            book.lines.append(book.lines[draw(st.integers(0, len(book.lines) - 1))])
    return book.encoded()
