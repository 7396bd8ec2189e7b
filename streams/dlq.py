"""`tierstream dlq replay`: put dead-lettered records back on their input topics.

Reads an event file of dead letters — lines `{"topic": "tierstream.dlq", "value": {...}}`
as `tierstream capture` writes them, or bare dead-letter values — decodes each
payload (`payload_encoding` utf-8 or base64) and publishes the original bytes to
its `source_topic` (with the settings' topic prefix), keyed by the dead letter's
key. The pure part (`plan`, `route`) needs no broker; `replay_dead_letters` sends.

Records go out with the producer's wall-clock timestamp: they are late data now,
and the worker judges lateness by the event's own `ts` (`max_lateness_days`), so a
record replayed too long after its business day is dead-lettered again as too_late.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .engine.decode import INPUT_TOPICS
from .engine.evaluate import DLQ
from .engine.jsonio import NotJson, loads
from .kafkaio import CHUNK, KafkaIOError, _close_quietly, _drain, _start, client_kwargs, ensure_topics
from .settings import Settings

__all__ = ["DlqStats", "Republish", "decode_payload", "plan", "replay_dead_letters", "route"]

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Republish:
    """One record to publish: the full topic name (prefix included), key and original bytes."""

    topic: str
    key: bytes | None
    payload: bytes


@dataclass
class DlqStats:
    """Lines skipped, by reason (each line counts once)."""

    not_json: int = 0
    not_dead_letter: int = 0  # another topic's line, or a value without source_topic/payload
    other_source: int = 0  # source_topic is not one of the three input topics
    bad_payload: int = 0  # unknown payload_encoding or invalid base64
    by_topic: dict[str, int] = field(default_factory=dict)

    def skipped(self) -> dict[str, int]:
        return {
            "not JSON": self.not_json,
            "not dead letters": self.not_dead_letter,
            "whose source_topic is not an input topic": self.other_source,
            "with a payload that cannot be decoded": self.bad_payload,
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
    """The records to publish for an event file's lines; skipped lines are counted in `stats`."""
    for _number, line in lines:
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
        stats.by_topic[topic] = stats.by_topic.get(topic, 0) + 1
        yield Republish(
            f"{prefix}{topic}",
            key.encode("utf-8", "surrogatepass") if isinstance(key, str) and key else None,
            payload,
        )


def route(
    lines: Iterable[tuple[int, bytes]], sink: Callable[[Republish], None], prefix: str = ""
) -> DlqStats:
    """Hand every record to publish to `sink`, synchronously; return the counts."""
    stats = DlqStats()
    for record in plan(lines, stats, prefix):
        sink(record)
    return stats


async def replay_dead_letters(
    settings: Settings, lines: Iterable[tuple[int, bytes]], *, log: Log = _stderr
) -> int:
    """Publish the dead letters' original records to their input topics; return how many were sent."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    await ensure_topics(settings, settings.input_topics, settings.partitions)
    producer = AIOKafkaProducer(
        **client_kwargs(settings), linger_ms=20, max_request_size=4 * 1024 * 1024, acks="all"
    )
    await _start(producer, settings)
    stats = DlqStats()
    sent = 0
    began = time.monotonic()
    in_flight: list[asyncio.Future[Any]] = []
    try:
        for record in plan(lines, stats, settings.topic_prefix):
            in_flight.append(await producer.send(record.topic, record.payload, key=record.key))
            sent += 1
            if len(in_flight) >= CHUNK:
                await _drain(in_flight)
        await _drain(in_flight)
        await producer.flush()
    except KafkaError as exc:
        raise KafkaIOError(f"publishing to {settings.broker_url} failed: {exc}") from None
    finally:
        await _close_quietly(producer)
    elapsed = max(time.monotonic() - began, 1e-9)
    per_topic = ", ".join(f"{t} {n:,}" for t, n in sorted(stats.by_topic.items())) or "none"
    log(f"dlq replay: published {sent:,} records in {elapsed:.2f}s ({per_topic})")
    for why, n in stats.skipped().items():
        if n:
            log(f"dlq replay: skipped {n:,} lines {why}")
    return sent
