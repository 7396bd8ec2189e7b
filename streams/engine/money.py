"""Exact money: wire text -> integer fen, fen -> "1234.56".

Amounts never pass through a binary float: JSON numbers reach us as their decimal
text (see `tierstream.engine.jsonio`), strings are matched against the wire grammar.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Final

_WIRE_AMOUNT: Final = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?\Z")
#: Amounts beyond 10**30 yuan are refused: a tiny text such as ``1e999999999`` would
#: otherwise expand into a billion-digit integer.
_MAX_EXPONENT: Final = 30


class AmountError(ValueError):
    """A value that is money-shaped but not a whole number of fen (``bad_amount``)."""


def text_to_fen(text: str) -> int:
    """Decimal text (no exponent) to fen; refuses sub-fen precision."""
    # The common wire shape first, "1234.56": ASCII digits (isdigit() on ASCII is exactly
    # [0-9]), a point, two decimals; the same fen the grammar below gives, without it.
    point = len(text) - 3
    if point > 0 and text[point] == "." and text.isascii():
        digits = text[:point] + text[point + 1 :]
        if digits.isdigit():
            return int(digits)
    m = _WIRE_AMOUNT.match(text)
    if m is None:
        raise AmountError(f"{text!r} is not a decimal amount like '1234.56'")
    sign, whole, frac = m.groups()
    if frac is None:
        fen = int(whole) * 100
    elif len(frac) == 2:
        fen = int(whole + frac)
    else:
        frac = frac.rstrip("0")
        if len(frac) > 2:
            raise AmountError(f"{text!r} is not a whole number of fen")
        fen = int(whole) * 100 + int(frac.ljust(2, "0"))
    return -fen if sign else fen


def decimal_to_fen(value: Decimal) -> int:
    """A JSON number (kept as Decimal) to fen; refuses sub-fen precision and NaN."""
    if not value.is_finite():
        raise AmountError(f"{value} is not a finite amount")
    if value.adjusted() > _MAX_EXPONENT:
        raise AmountError(f"{value} is out of range")
    try:
        scaled = value.scaleb(2)
        fen = int(scaled)
    except (InvalidOperation, OverflowError) as exc:  # pragma: no cover - defensive
        raise AmountError(f"{value} is out of range") from exc
    if scaled != fen:
        raise AmountError(f"{value} is not a whole number of fen")
    return fen


def format_fen(fen: int) -> str:
    """Fen to a decimal string with exactly two decimals ("-0.05", "12000.00")."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def convert(fen: int, rate_num: int, rate_den: int) -> int:
    """fen x rate, rounded toward negative infinity (rate as an exact fraction)."""
    return (fen * rate_num) // rate_den


def decimal_fraction(text: str) -> tuple[int, int]:
    """A decimal literal as an exact (numerator, denominator) pair."""
    num, den = Decimal(text).as_integer_ratio()
    return num, den
