"""The engine's shortcuts for common shapes give what the general path gives (issue 13)."""

import json
import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tierstream.engine.money import _WIRE_AMOUNT, AmountError, text_to_fen
from tierstream.engine.timeutil import WIRE_TIMESTAMP, Calendar, TimestampError, parse_instant
from tierstream.tools.simulate import LineWriter, output_line

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _by_grammar(text: str) -> int:
    """The instant as the wire grammar and datetime read it (no cache)."""
    assert WIRE_TIMESTAMP.match(text)
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (at - _EPOCH) // timedelta(microseconds=1)


@given(
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)),
    st.sampled_from(["+08:00", "-05:00", "+05:45", "+00:00", "-00:30", "Z"]),
    st.booleans(),
)
def test_timestamps_read_through_the_hour_cache_agree_with_the_grammar(
    at: datetime, offset: str, fraction: bool
) -> None:
    text = at.strftime("%Y-%m-%dT%H:%M:%S") + (f".{at.microsecond:06d}" if fraction else "") + offset
    first = parse_instant(text)  # fills the cache for that hour
    assert first == parse_instant(text) == _by_grammar(text)
    later = at.strftime("%Y-%m-%dT%H:") + "59:58" + offset
    assert parse_instant(later) == _by_grammar(later)


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-01T09:60:00+08:00",
        "2026-03-01T09:30:60+08:00",
        "2026-03-01T09:5a:00+08:00",
        "2026-03-01T09:30: 1+08:00",
        "2026-03-01T09 30:00+08:00",
        "2026-03-01T09:30 00+08:00",
        "2026-03-01T09:\uff130:00+08:00",  # a full-width digit: isdigit() but not [0-9]
        "2026-03-01T09:30:0\u0663+08:00",  # an Arabic-Indic digit
    ],
)
def test_a_cached_hour_does_not_let_a_bad_timestamp_in(text: str) -> None:
    parse_instant("2026-03-01T09:00:00+08:00")
    with pytest.raises(TimestampError):
        parse_instant(text)


def test_a_25_character_timestamp_with_a_fraction_keeps_it() -> None:
    assert parse_instant("2026-03-01T09:30:00.1234Z") == parse_instant("2026-03-01T09:30:00Z") + 123_400
    assert parse_instant("2026-03-01T09:31:00.1234Z") == parse_instant("2026-03-01T09:31:00Z") + 123_400


@pytest.mark.parametrize(
    "zone", ["Asia/Shanghai", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe"]
)
@given(
    instant=st.integers(min_value=-2_500_000_000_000_000, max_value=4_000_000_000_000_000),
    whole=st.booleans(),
)
def test_isoformat_writes_what_datetime_writes(zone: str, instant: int, whole: bool) -> None:
    if whole:
        instant -= instant % 1_000_000
    calendar = Calendar(zone)
    assert calendar.isoformat(instant) == calendar.to_datetime(instant).isoformat()


@given(st.from_regex(r"-?[0-9]{1,20}(\.[0-9]{0,4})?", fullmatch=True))
def test_text_amounts_take_the_same_fen_on_every_path(text: str) -> None:
    m = _WIRE_AMOUNT.match(text)
    try:
        fen = text_to_fen(text)
    except AmountError:
        assert m is None or (m.group(3) is not None and len(m.group(3).rstrip("0")) > 2)
        return
    assert m is not None
    sign, whole, frac = m.groups()
    expected = int(whole) * 100 + int((frac or "").rstrip("0").ljust(2, "0"))
    assert fen == (-expected if sign else expected)


@pytest.mark.parametrize(
    "text", ["\uff11.23", "1\u0663.23", "1_0.23", " 12.34", "12.34 ", "+1.23", ".12", "1.2.3"]
)
def test_amounts_the_grammar_refuses_stay_refused(text: str) -> None:
    assert not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text)
    with pytest.raises(AmountError):
        text_to_fen(text)


def test_output_lines_are_json_dumps_and_written_in_order() -> None:
    outputs = [("tier.changes", "C1", {"a": "é", "n": 1.5, "z": None, "l": [1, "x"]})] * 3 + [
        ("tierstream.dlq", "", {"payload": "\ud800"})
    ]
    for output in outputs:
        topic, _, value = output
        assert output_line(output) == json.dumps({"topic": topic, "value": value}, ensure_ascii=False) + "\n"
    sink = StringIO()
    writer = LineWriter(sink, batch=2)
    for output in outputs[:3]:
        writer.emit(output)
    assert sink.getvalue() == output_line(outputs[0]) * 2
    writer.emit(outputs[3])
    writer.close()
    assert sink.getvalue() == "".join(output_line(o) for o in outputs)
