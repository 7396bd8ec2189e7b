"""`tierstream dlq replay`: put dead-lettered records, once fixed, back on their input topics.

Reads an event file of dead letters — lines `{"topic": "tierstream.dlq", "value": {...}}`
as `tierstream capture` writes them, or bare dead-letter values — decodes each
payload (`payload_encoding` utf-8 or base64) and publishes those bytes to its
`source_topic` (with the settings' topic prefix). An operator fixes a record by
editing its `payload` text (e.g. with jq's `fromjson` and `tojson`).

Every payload first goes through the checks a worker makes of one record on its own
(`Checker`: size, JSON, schema and values against the rules, future timestamp): one
that a worker would only dead-letter again is refused and named by its line, never
published. Records go out keyed by their payload's `customer_id`, the key that puts
them on the customer's partition even when the dead letter had none (a record that
lacked the field) or a wrong one. The pure part (`plan`, `route`, `vet`, `check_file`)
needs no broker; `replay_dead_letters` sends.

Records go out with the producer's wall-clock timestamp: they are late data now,
and the worker judges lateness by the event's own `ts` (`max_lateness_days`), so a
record replayed too long after its business day is dead-lettered again as too_late.
Lateness and duplicates depend on the partition's state: only the worker can tell.
"""

from __future__ import annotations

import base64
import binascii
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from ..broker import input_producer
from ..engine.decode import (
    INPUT_TOPICS,
    BadRecord,
    Decoder,
    guess_customer,
    read_payload,
    refuse_future,
)
from ..engine.evaluate import DLQ
from ..engine.jsonio import NotJson, loads
from ..engine.rules import Rules
from ..engine.timeutil import wall_clock_us
from ..settings import Settings

__all__ = [
    "Checker",
    "DlqStats",
    "Refused",
    "Republish",
    "check_file",
    "decode_payload",
    "plan",
    "replay_dead_letters",
    "route",
    "vet",
]

#: Refused records named one by one (the rest are counted).
LISTED = 20

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Republish:
    """One record to publish: the full topic name (prefix included), key and payload bytes;
    `source` (the bare input topic) and `line` (0-based, in the file) say where it came from."""

    topic: str
    key: bytes | None
    payload: bytes
    source: str = field(default="", compare=False)
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Refused:
    """A dead letter whose payload a worker would dead-letter again."""

    line: int  # 0-based, as read_lines numbers them
    source: str
    customer: str | None  # as far as the payload, or the dead letter's key, tells
    error: str
    detail: str

    def describe(self) -> str:
        who = f" for customer {self.customer}" if self.customer else ""
        return (
            f"line {self.line + 1}: the {self.source} record{who} is still bad ({self.error}: {self.detail})"
        )


@dataclass
class DlqStats:
    """Lines skipped, by reason (each line counts once), and records routed or sent by topic."""

    not_json: int = 0
    not_dead_letter: int = 0  # another topic's line, or a value without source_topic/payload
    other_source: int = 0  # source_topic is not one of the three input topics
    bad_payload: int = 0  # unknown payload_encoding or invalid base64
    still_bad: int = 0  # a worker would dead-letter the payload again (`vet`)
    by_topic: dict[str, int] = field(default_factory=dict)

    def skipped(self) -> dict[str, int]:
        return {
            "not JSON": self.not_json,
            "not dead letters": self.not_dead_letter,
            "whose source_topic is not an input topic": self.other_source,
            "with a payload that cannot be decoded": self.bad_payload,
            "whose record a worker would dead-letter again": self.still_bad,
        }


def decode_payload(value: dict[str, Any]) -> bytes:
    """The original record bytes of a dead-letter value; ValueError when they cannot be had."""
    text = value.get("payload")
    if not isinstance(text, str):
        raise ValueError("payload is not a string")
    encoding = value.get("payload_encoding", "utf-8")
    if encoding == "utf-8":
        # A lone surrogate came from bytes that were not UTF-8 after all: give them back as they were.
        return text.encode("utf-8", "surrogatepass")
    if encoding == "base64":
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"invalid base64: {exc}") from None
    raise ValueError(f"unknown payload_encoding {encoding!r}")


def _dead_letter(doc: Any, prefix: str) -> dict[str, Any] | None:
    """The dead-letter value of a parsed line (capture form or bare value), or None."""
    if not isinstance(doc, dict):
        return None
    if "topic" in doc and "value" in doc:
        if doc["topic"] not in (DLQ, f"{prefix}{DLQ}"):
            return None
        doc = doc["value"]
        if not isinstance(doc, dict):
            return None
    if "source_topic" not in doc or "payload" not in doc:
        return None
    return doc


def _input_topic(source: Any, prefix: str) -> str | None:
    """The bare input topic a dead letter came from (the worker records bare names)."""
    if not isinstance(source, str):
        return None
    if source in INPUT_TOPICS:
        return source
    if prefix and source.startswith(prefix) and source[len(prefix) :] in INPUT_TOPICS:
        return source[len(prefix) :]
    return None


def plan(lines: Iterable[tuple[int, bytes]], stats: DlqStats, prefix: str = "") -> Iterator[Republish]:
    """The decoded dead letters of an event file's lines, keyed as they were (unchecked);
    skipped lines are counted in `stats`."""
    for number, line in lines:
        try:
            doc = loads(line.decode("utf-8"))
        except (UnicodeDecodeError, NotJson):
            stats.not_json += 1
            continue
        value = _dead_letter(doc, prefix)
        if value is None:
            stats.not_dead_letter += 1
            continue
        topic = _input_topic(value.get("source_topic"), prefix)
        if topic is None:
            stats.other_source += 1
            continue
        try:
            payload = decode_payload(value)
        except ValueError:
            stats.bad_payload += 1
            continue
        key = value.get("key")
        yield Republish(
            f"{prefix}{topic}",
            key.encode("utf-8", "surrogatepass") if isinstance(key, str) and key else None,
            payload,
            topic,
            number,
        )


def route(
    lines: Iterable[tuple[int, bytes]], sink: Callable[[Republish], None], prefix: str = ""
) -> DlqStats:
    """Hand every decoded dead letter to `sink` as it is, synchronously; return the counts."""
    stats = DlqStats()
    for record in plan(lines, stats, prefix):
        stats.by_topic[record.source] = stats.by_topic.get(record.source, 0) + 1
        sink(record)
    return stats


class Checker:
    """The checks a worker makes of one record on its own, in its order (SPEC §6): size,
    UTF-8 and JSON, schema and values (with the rules' currencies), then a `ts` more than
    5 minutes ahead of `now`. Lateness and duplicates need the partition's state."""

    def __init__(self, rules: Rules, now: Callable[[], int] | None = wall_clock_us) -> None:
        self.decoder = Decoder(rules.currencies)
        self.max_bytes = rules.max_record_bytes
        self.now = now

    def customer(self, source: str, payload: bytes) -> str:
        """The customer id of a record that passes; BadRecord (error, detail) when it does not."""
        value = read_payload(payload, self.max_bytes)
        event = self.decoder.decode(source, value)
        refuse_future(event.ts, self.now() if self.now is not None else None)
        return event.customer_id


def _customer_hint(record: Republish) -> str | None:
    """Whose record a refused one is, for the message: the payload's id, else the old key."""
    try:
        hint = guess_customer(loads(record.payload.decode("utf-8")))
    except (UnicodeDecodeError, NotJson):
        hint = None
    if hint is None and record.key is not None:
        hint = record.key.decode("utf-8", "replace")
    return hint


def vet(records: Iterable[Republish], checker: Checker) -> Iterator[Republish | Refused]:
    """Each record checked: a Republish keyed by its payload's customer_id, or a Refused."""
    for record in records:
        try:
            customer = checker.customer(record.source, record.payload)
        except BadRecord as bad:
            yield Refused(record.line, record.source, _customer_hint(record), bad.error, bad.detail)
            continue
        yield replace(record, key=customer.encode("utf-8", "surrogatepass"))


def check_file(
    lines: Iterable[tuple[int, bytes]], checker: Checker, prefix: str = "", keep: int = LISTED
) -> tuple[int, list[Refused]]:
    """How many of the file's dead letters a worker would refuse again, and the first `keep`."""
    count = 0
    refused: list[Refused] = []
    for item in vet(plan(lines, DlqStats(), prefix), checker):
        if isinstance(item, Refused):
            count += 1
            if len(refused) < keep:
                refused.append(item)
    return count, refused


async def replay_dead_letters(
    settings: Settings, lines: Iterable[tuple[int, bytes]], checker: Checker, *, log: Log = _stderr
) -> int:
    """Publish the dead letters whose payloads pass `checker` to their input topics, keyed by
    customer_id; name (the first LISTED) and count the others. Return how many were sent."""
    stats = DlqStats()
    began = time.monotonic()
    async with input_producer(settings, linger_ms=20, acks="all") as out:
        for item in vet(plan(lines, stats, settings.topic_prefix), checker):
            if isinstance(item, Refused):
                stats.still_bad += 1
                if stats.still_bad <= LISTED:
                    log(f"dlq replay: skipped {item.describe()}")
                continue
            await out.send(item.topic, item.payload, item.key)
            stats.by_topic[item.source] = stats.by_topic.get(item.source, 0) + 1
    elapsed = max(time.monotonic() - began, 1e-9)
    per_topic = ", ".join(f"{t} {n:,}" for t, n in sorted(stats.by_topic.items())) or "none"
    log(f"dlq replay: published {out.sent:,} records in {elapsed:.2f}s ({per_topic})")
    for why, n in stats.skipped().items():
        if n:
            log(f"dlq replay: skipped {n:,} lines {why}")
    return out.sent
