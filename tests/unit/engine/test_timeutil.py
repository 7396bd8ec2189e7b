import pytest

from tierstream.engine.timeutil import Calendar, TimestampError, parse_instant

SH = Calendar("Asia/Shanghai")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("2026-03-01T09:30:00+08:00", "2026-03-01T01:30:00Z"),
        ("2026-03-01T00:00:00+08:00", "2026-02-28T16:00:00Z"),
        ("2026-03-01T09:30:00.5+08:00", "2026-03-01T01:30:00.500000Z"),
        ("2026-03-01T09:30:00-05:00", "2026-03-01T14:30:00Z"),
    ],
)
def test_same_instants(a: str, b: str) -> None:
    assert parse_instant(a) == parse_instant(b)


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-01T10:00+08:00",
        "2026-01-01 10:00:00+08:00",
        "2026-02-30T10:00:00+08:00",
        "2026-01-01T24:00:00+08:00",
        "2026-01-01T10:00:00+0800",
        "20260101T100000Z",
        "",
        "2026-01-01T10:00:00z",
    ],
)
def test_malformed_timestamps(text: str) -> None:
    with pytest.raises(TimestampError) as info:
        parse_instant(text)
    assert not info.value.naive


@pytest.mark.parametrize("text", ["2026-01-01T10:00:05", "2026-01-01T10:00:05.123"])
def test_naive_timestamps(text: str) -> None:
    with pytest.raises(TimestampError) as info:
        parse_instant(text)
    assert info.value.naive


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("2026-03-01T00:00:00+08:00", "2026-03-01"),
        ("2026-02-28T23:59:59.999999+08:00", "2026-02-28"),
        ("2026-02-28T16:00:00Z", "2026-03-01"),  # 00:00 in Shanghai
        ("2026-02-28T15:59:59Z", "2026-02-28"),
    ],
)
def test_business_day_uses_the_rules_timezone(text: str, day: str) -> None:
    assert SH.day_text(SH.day_of(parse_instant(text))) == day


def test_isoformat_like_python() -> None:
    assert SH.isoformat(parse_instant("2026-02-28T16:00:00Z")) == "2026-03-01T00:00:00+08:00"
    assert SH.isoformat(parse_instant("2026-03-01T01:00:00.25Z")) == "2026-03-01T09:00:00.250000+08:00"


def test_boundary_is_local_midnight() -> None:
    day = SH.day_from_text("2026-03-01")
    assert SH.boundary(day) == parse_instant("2026-03-01T00:00:00+08:00")
    ny = Calendar("America/New_York")
    dst = ny.day_from_text("2026-03-09")  # the day after the spring-forward change
    assert ny.isoformat(ny.boundary(dst)) == "2026-03-09T00:00:00-04:00"
