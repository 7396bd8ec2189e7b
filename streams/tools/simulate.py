"""`tierstream simulate`: the engine over an event file, no broker (our test driver)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from ..engine import decode as d
from ..engine.evaluate import Output
from ..engine.jsonio import NotJson, dumps_compact, loads
from ..engine.packed import DEFAULT_DECODED, PackedCustomers
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
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [
            engine.dead_letter(
                None, 0, number, None, line, d.INVALID_JSON, f"line is not UTF-8: {exc.reason}"
            )
        ]
    try:
        doc = loads(text)
    except NotJson as exc:
        return [engine.dead_letter(None, 0, number, None, line, d.INVALID_JSON, f"line is not JSON: {exc}")]
    topic = doc.get("topic") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or topic not in d.INPUT_TOPICS or "value" not in doc:
        value = doc.get("value") if isinstance(doc, dict) else None
        payload = (
            value.encode("utf-8")
            if isinstance(value, str)
            else dumps_compact(value).encode("utf-8")
            if value is not None
            else line
        )
        limit = engine.rules.max_record_bytes
        error, detail = (
            (d.OVERSIZE, f"record of {len(payload)} bytes exceeds max_record_bytes {limit}")
            if len(payload) > limit
            else (
                d.SCHEMA_VIOLATION,
                f"the line names no input topic ({', '.join(d.INPUT_TOPICS)}) with a value",
            )
        )
        return [
            engine.dead_letter(
                topic if isinstance(topic, str) else None,
                0,
                number,
                d.guess_customer(value),
                payload,
                error,
                detail,
            )
        ]
    value = doc["value"]
    if isinstance(value, str):
        # A lone surrogate ("\ud800") is not UTF-8: keep its bytes, as a broken producer
        # would send them, so the record is dead-lettered rather than crashing the run.
        return engine.process_payload(
            topic, value.encode("utf-8", "surrogatepass"), partition=0, offset=number, key=d.guess_key(value)
        )

    def compact() -> bytes:
        return dumps_compact(value).encode("utf-8")

    # The compact form is never longer than the line, so most lines need no re-encoding.
    if len(line) > engine.rules.max_record_bytes:
        raw = compact()
        if len(raw) > engine.rules.max_record_bytes:
            return [
                engine.dead_letter(
                    topic,
                    0,
                    number,
                    d.guess_customer(value),
                    raw,
                    d.OVERSIZE,
                    f"record of {len(raw)} bytes exceeds max_record_bytes {engine.rules.max_record_bytes}",
                )
            ]
    return engine.process_value(topic, value, compact, partition=0, offset=number)


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
        for number, line in lines:
            for output in feed_line(engine, number, line):
                emit(output)
            if type(engine.customers) is dict and len(engine.customers) > decoded:
                engine.customers = PackedCustomers(engine.ledger.layout, decoded, engine.customers)
        if until is not None:
            for output in engine.advance_clock(until):
                emit(output)
    finally:
        engine.flush = None
    return engine


def output_line(output: Output) -> str:
    topic, _, value = output
    return json.dumps({"topic": topic, "value": value}, ensure_ascii=False) + "\n"


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
