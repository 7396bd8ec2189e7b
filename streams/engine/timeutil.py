"""Instants, business days and the wire timestamp grammar.

Instants are integer microseconds since the Unix epoch (UTC); business days are
integer day ordinals (days since 1970-01-01) in the rules' timezone.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

US_PER_SECOND: Final = 1_000_000
US_PER_DAY: Final = 86_400 * US_PER_SECOND
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
#: Offsets change only on quarter-hour instants in every zone tzdata knows.
_OFFSET_BUCKET_US: Final = 900 * US_PER_SECOND
#: isoformat writes instants in years 1900-9000 itself (datetime's range with a margin)
_FIRST_US: Final = (date(1900, 1, 1).toordinal() - _EPOCH_ORDINAL) * US_PER_DAY
_LAST_US: Final = (date(9000, 1, 1).toordinal() - _EPOCH_ORDINAL) * US_PER_DAY

#: the wire grammar of a timestamp (SPEC §2): date, hour, minute, second, fraction, offset
#: (None: naive, which parse_instant refuses). The one copy the shell uses.
WIRE_TIMESTAMP: Final = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?(Z|[+-][0-9]{2}:[0-9]{2})?\Z"
)
#: what `ord` adds to mm:ss read as (ord(m1) * 10 + ord(m2)) * 60 + ord(s1) * 10 + ord(s2)
_DIGIT_PAIRS: Final = (ord("0") * 10 + ord("0")) * 61
#: Parsed dates and offsets: a stream repeats the same few of each.
_DAYS: Final[dict[str, int]] = {}
_OFFSETS: Final[dict[str, int]] = {"Z": 0}
#: "YYYY-MM-DDTHH" + offset -> the instant that hour starts, for 25-character timestamps
_HOURS: Final[dict[str, int]] = {}


class TimestampError(ValueError):
    """A timestamp the grammar refuses; `naive` tells `naive_timestamp` apart."""

    def __init__(self, message: str, naive: bool = False) -> None:
        super().__init__(message)
        self.naive = naive


def parse_instant(text: str) -> int:
    """RFC 3339 text with an offset to epoch microseconds (fraction truncated to us)."""
    # The common shape, "2026-03-01T09:30:00+08:00": an hour the grammar below already
    # parsed (same date, hour and offset) plus minutes and seconds checked here.
    if len(text) == 25:
        hour_start = _HOURS.get(text[:13] + text[19:])
        if hour_start is not None and text[13] == ":" and text[16] == ":":
            # minutes and seconds 00-59 as ASCII digits, compared one character at a time
            # (compiled, two slices, four method calls and two int() cost more than the rest)
            m1, m2, s1, s2 = text[14], text[15], text[17], text[18]
            if "0" <= m1 <= "5" and "0" <= m2 <= "9" and "0" <= s1 <= "5" and "0" <= s2 <= "9":
                seconds = (ord(m1) * 10 + ord(m2)) * 60 + ord(s1) * 10 + ord(s2) - _DIGIT_PAIRS
                return hour_start + seconds * US_PER_SECOND
    m = WIRE_TIMESTAMP.match(text)
    if m is None:
        raise TimestampError(f"{text!r} is not a timestamp like 2026-03-01T09:30:00+08:00")
    ymd, hour, minute, second, frac, offset = m.groups()
    if offset is None:
        raise TimestampError(f"{text!r} has no UTC offset; add one, e.g. +08:00 or Z", naive=True)
    days = _DAYS.get(ymd)
    if days is None:
        try:
            days = date.fromisoformat(ymd).toordinal() - _EPOCH_ORDINAL
        except ValueError as exc:
            raise TimestampError(f"{text!r} is not a valid date: {exc}") from None
        if len(_DAYS) < 100_000:
            _DAYS[ymd] = days
    h, mi, se = int(hour), int(minute), int(second)
    if h > 23 or mi > 59 or se > 59:
        raise TimestampError(f"{text!r} is not a valid time of day")
    offset_seconds = _OFFSETS.get(offset)
    if offset_seconds is None:
        oh, om = int(offset[1:3]), int(offset[4:6])
        if oh > 23 or om > 59:
            raise TimestampError(f"{text!r} has an impossible UTC offset")
        offset_seconds = (oh * 3600 + om * 60) * (-1 if offset[0] == "-" else 1)
        _OFFSETS[offset] = offset_seconds
    seconds = days * 86_400 + h * 3600 + mi * 60 + se - offset_seconds
    if frac is None and len(text) == 25 and len(_HOURS) < 100_000:  # "+HH:MM" offsets
        _HOURS[text[:13] + text[19:]] = (seconds - mi * 60 - se) * US_PER_SECOND
    if frac:
        return seconds * US_PER_SECOND + int(frac[:6].ljust(6, "0"))
    return seconds * US_PER_SECOND


class Calendar:
    """Business days of one timezone, with the conversions cached."""

    def __init__(self, tz_name: str) -> None:
        self.tz_name = tz_name
        self.tz = ZoneInfo(tz_name)
        self._offsets: dict[int, int] = {}
        self._boundaries: dict[int, int] = {}
        self._day_texts: dict[int, str] = {}
        self._offset_texts: dict[int, str] = {}

    def offset_us(self, instant: int) -> int:
        bucket = instant // _OFFSET_BUCKET_US
        off = self._offsets.get(bucket)
        if off is None:
            local = self.to_datetime(bucket * _OFFSET_BUCKET_US)
            delta = local.utcoffset()
            off = int(delta.total_seconds() * US_PER_SECOND) if delta else 0
            self._offsets[bucket] = off
        return off

    def day_of(self, instant: int) -> int:
        """The business day (ordinal since epoch) of an instant."""
        return (instant + self.offset_us(instant)) // US_PER_DAY

    def boundary(self, day: int) -> int:
        """The instant of 00:00 local time on a business day."""
        inst = self._boundaries.get(day)
        if inst is None:
            d = date.fromordinal(day + _EPOCH_ORDINAL)
            local = datetime(d.year, d.month, d.day, tzinfo=self.tz)
            inst = (local - _EPOCH) // timedelta(microseconds=1)
            self._boundaries[day] = inst
        return inst

    def to_datetime(self, instant: int) -> datetime:
        return (_EPOCH + timedelta(microseconds=instant)).astimezone(self.tz)

    def isoformat(self, instant: int) -> str:
        """As Python's isoformat writes it: six fraction digits only when non-zero."""
        offset = self.offset_us(instant)
        if offset % 60_000_000 or not _FIRST_US <= instant < _LAST_US:  # seconds in the offset, or far dates
            return self.to_datetime(instant).isoformat()
        day, of_day = divmod(instant + offset, US_PER_DAY)
        prefix = self._day_texts.get(day)
        if prefix is None:
            prefix = f"{self.day_text(day)}T"
            if len(self._day_texts) < 100_000:
                self._day_texts[day] = prefix
        suffix = self._offset_texts.get(offset)
        if suffix is None:
            hours, minutes = divmod(abs(offset) // 60_000_000, 60)
            suffix = self._offset_texts[offset] = f"{'-' if offset < 0 else '+'}{hours:02d}:{minutes:02d}"
        seconds, micro = divmod(of_day, US_PER_SECOND)
        minutes, second = divmod(seconds, 60)
        hour, minute = divmod(minutes, 60)
        if micro:
            return f"{prefix}{hour:02d}:{minute:02d}:{second:02d}.{micro:06d}{suffix}"
        return f"{prefix}{hour:02d}:{minute:02d}:{second:02d}{suffix}"

    @staticmethod
    def day_text(day: int) -> str:
        return date.fromordinal(day + _EPOCH_ORDINAL).isoformat()

    @staticmethod
    def day_from_text(text: str) -> int:
        return date.fromisoformat(text).toordinal() - _EPOCH_ORDINAL


def wall_clock_us() -> int:
    """The real wall clock; engines take a clock function so tests can inject one.
    (`time.time_ns`: the worker reads it per record, and a datetime costs ten times more.)"""
    return time.time_ns() // 1_000
