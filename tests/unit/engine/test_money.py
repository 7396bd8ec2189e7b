from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tierstream.engine.jsonio import loads
from tierstream.engine.money import AmountError, convert, decimal_to_fen, format_fen, text_to_fen


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("0", 0),
        ("0.1", 10),
        ("12.300", 1230),
        ("-5.00", -500),
        ("1000", 100000),
        ("99999999999999999999999.99", 9999999999999999999999999),
        ("-0.01", -1),
        ("007.5", 750),
    ],
)
def test_text_amounts_parse_exactly(text: str, fen: int) -> None:
    assert text_to_fen(text) == fen


@pytest.mark.parametrize(
    "text", ["12.345", "1_000", "abc", "", "1e2", "+5", "1.", ".5", " 1", "0.001", "NaN"]
)
def test_bad_text_amounts_are_refused(text: str) -> None:
    with pytest.raises(AmountError):
        text_to_fen(text)


@pytest.mark.parametrize(
    ("json_text", "fen"),
    [
        ("1e2", 10000),
        ("0.1", 10),
        ("12.300", 1230),
        ("-0.5", -50),
        ("1E-2", 1),
        ("123456789012345678.91", 12345678901234567891),
    ],
)
def test_json_numbers_parse_as_decimal_text(json_text: str, fen: int) -> None:
    value = loads(json_text)
    assert isinstance(value, Decimal)
    assert decimal_to_fen(value) == fen


@pytest.mark.parametrize("json_text", ["0.001", "1e-3", "1e999"])
def test_bad_json_numbers_are_refused(json_text: str) -> None:
    with pytest.raises(AmountError):
        decimal_to_fen(loads(json_text))


@pytest.mark.parametrize(
    ("fen", "text"), [(0, "0.00"), (5, "0.05"), (-5, "-0.05"), (1200000, "12000.00"), (-123456, "-1234.56")]
)
def test_format_fen(fen: int, text: str) -> None:
    assert format_fen(fen) == text


def test_currency_conversion_rounds_toward_negative_infinity() -> None:
    num, den = Decimal("7.1").as_integer_ratio()
    assert convert(1001, num, den) == 7107  # 7107.1 -> 7107
    assert convert(-1001, num, den) == -7108  # -7107.1 -> -7108


@given(st.integers(min_value=-(10**20), max_value=10**20))
def test_format_and_parse_round_trip(fen: int) -> None:
    assert text_to_fen(format_fen(fen)) == fen
