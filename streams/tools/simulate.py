"""`tierstream simulate`: the engine over an event file, no broker (our test driver)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from ..engine import decode as d
from ..engine import feed
from ..engine.evaluate import Output
from ..engine.jsonio import NotJson, loads
from ..engine.packed import DEFAULT_DECODED
from ..engine.partition import PartitionEngine
from ..engine.rules import Rules
from ..engine.timeutil import TimestampError, parse_instant
from . import eventfile
from .eventfile import DEFAULT_MAX_LINE, OverlongLine


def read_lines(stream: IO[bytes], max_line: int = DEFAULT_MAX_LINE) -> Iterator[tuple[int, bytes]]:
    """(0-based line number, line without its newline), blank lines skipped; lines over
    `max_line` bytes come out as eventfile.OverlongLine (never held whole)."""
    return eventfile.read_lines(stream, max_line)


def max_line_bytes(rules: Rules) -> int:
    """A line longer than this cannot hold a record within max_record_bytes (a JSON string
    escapes a byte into at most 6 characters, plus the envelope)."""
    return max(DEFAULT_MAX_LINE, 6 * rules.max_record_bytes + 4096)


_TOPIC_FIELD = re.compile(rb'"topic"\s*:\s*"([a-z.-]+)"')


def _overlong(engine: PartitionEngine, number: int, line: OverlongLine) -> list[Output]:
    """An event-file line too long to read whole: oversize, from its first bytes."""
    found = _TOPIC_FIELD.search(line[:4096])
    topic = (
        found.group(1).decode("ascii") if found and found.group(1).decode("ascii") in d.INPUT_TOPICS else None
    )
    head = bytes(line[:4096]).decode("utf-8", "replace")
    return [
        engine.dead_letter(
            topic,
            0,
            number,
            d.guess_key(head),
            bytes(line),
            d.OVERSIZE,
            f"line of {line.size:,} bytes exceeds max_record_bytes {engine.rules.max_record_bytes}",
        )
    ]


def event_instant(line: bytes) -> int | None:
    """The instant of a line's event `ts` (a cheap look, without decoding the event); None
    when the line has none that parses: such lines are fed, and the engine judges them."""
    try:
        value = loads(line.decode("utf-8"))["value"]
        return (
            parse_instant(value["ts"])
            if isinstance(value, dict) and isinstance(value.get("ts"), str)
            else None
        )
    except (NotJson, UnicodeDecodeError, KeyError, TypeError, TimestampError):
        return None


def happens_after(line: bytes, at: int | None) -> bool:
    """Whether a line's event happens after `at` (`explain --at`, `whatif --at` leave it out)."""
    if at is None:
        return False
    instant = event_instant(line)
    return instant is not None and instant > at


def feed_line(engine: PartitionEngine, number: int, line: bytes) -> list[Output]:
    """One event-file line through the engine, exactly as the broker record it names."""
    if isinstance(line, OverlongLine):
        return _overlong(engine, number, line)
    return feed.feed_line(engine, number, line)


def simulate(
    rules: Rules,
    lines: Iterable[tuple[int, bytes]],
    emit: Callable[[Output], None],
    *,
    until: int | None = None,
    now: int | None = None,
    wall: Callable[[], int] | None = None,
    engine: PartitionEngine | None = None,
    decoded: int = DEFAULT_DECODED,
) -> PartitionEngine:
    """Run every line through one eager engine (a new one, or one started from a
    snapshot); `emit` gets each output in order. Once the bank has more than `decoded`
    customers, the least recently used beyond that many are held packed."""
    if engine is None:
        engine = PartitionEngine(rules, now=(lambda: now) if now is not None else None, wall=wall)

    def flush(outputs: list[Output]) -> None:
        for output in outputs:
            emit(output)

    engine.flush = flush  # a sweep's outputs go out as they come
    try:
        feed.feed_lines(engine, lines, emit, feed_line, decoded)
        if until is not None:
            for output in engine.advance_clock(until):
                emit(output)
    finally:
        engine.flush = None
    return engine


#: json.dumps(..., ensure_ascii=False) builds an encoder per call; this one is the same
#: encoder, built once (the same text: default separators, non-ASCII kept).
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode


def output_line(output: Output) -> str:
    topic, _, value = output
    return _ENCODE({"topic": topic, "value": value}) + "\n"


class LineWriter:
    """Output lines to a text file in batches (one write per `batch` lines); `close`
    writes the rest."""

    def __init__(self, sink: IO[str], batch: int = 256) -> None:
        self.sink = sink
        self.batch = batch
        self.lines: list[str] = []

    def emit(self, output: Output) -> None:
        lines = self.lines
        lines.append(output_line(output))
        if len(lines) >= self.batch:
            self.sink.write("".join(lines))
            lines.clear()

    def close(self) -> None:
        if self.lines:
            self.sink.write("".join(self.lines))
            self.lines.clear()


def stats(engine: PartitionEngine) -> dict[str, Any]:
    migrations: dict[str, dict[str, int]] = {}
    for (src, dst), n in sorted(engine.migrations.items()):
        migrations.setdefault(src, {})[dst] = n
    ev = engine.evaluator
    segments: dict[str, Counter[str]] = {}
    for c in engine.customers.values():
        for name, value in ev.serving_segments(c).items():
            segments.setdefault(name, Counter())[value] += 1
    return {
        "outcomes": dict(engine.outcomes),
        "dead_letters": dict(sorted(engine.dead_letters.items())),
        "tiers": engine.tier_counts(),
        "migrations": migrations,
        "segments": {name: dict(sorted(counts.items())) for name, counts in segments.items()},
    }
