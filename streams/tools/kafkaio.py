"""Event files to and from a real broker: `tierstream replay` and `tierstream capture` (SPEC §8).

Replay sets every record's Kafka timestamp to the file's emission order (the running
maximum of event `ts`, strictly increasing), because the worker merges its three
input topics per partition by record timestamp: that is how the broker carries the
file's order across topics. Capture never trusts end offsets (Tansu reports them
wrong, see LOCAL-STACK.md); it stops when the output topics stay quiet.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from ..broker import (
    BrokerUnreachable,
    KafkaIOError,
    client_kwargs,
    close_quietly,
    existing_partitions,
    input_producer,
    start_client,
)
from ..contract import OUTPUT_TOPICS, SEGMENT_CHANGES
from ..engine.decode import FUTURE_TOLERANCE_US, INPUT_TOPICS, guess_key
from ..engine.jsonio import NotJson, dumps_compact, loads
from ..engine.timeutil import WIRE_TIMESTAMP, TimestampError, parse_instant
from ..settings import Settings

__all__ = ["capture", "format_shifted", "replay"]


#: Replay's record timestamps are milliseconds.
_US_PER_MS = 1_000
_TS_FIELD = re.compile(rb'"ts"\s*:\s*"')

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- replay -----------------------------------------------------------------------------------
def format_shifted(text: str, shift_seconds: int) -> str | None:
    """`text` (a valid wire timestamp) moved by whole seconds, in its own offset and fraction; or None."""
    from datetime import datetime, timedelta

    m = WIRE_TIMESTAMP.match(text)
    if m is None or m.group(6) is None:  # not a timestamp, or a naive one
        return None
    day, hour, minute, second, frac, offset = m.groups()
    try:
        moved = datetime.fromisoformat(f"{day}T{hour}:{minute}:{second}") + timedelta(seconds=shift_seconds)
    except (ValueError, OverflowError):
        return None
    return moved.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac is not None else "") + offset


#: The C encoder writes what dumps_compact writes for values without JSON fractions, ~5x faster;
#: a JsonNumber (Decimal) makes it raise TypeError, and dumps_compact keeps its source text.
_fast_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _compact(value: Any) -> bytes:
    """The record bytes of an object value: its compact JSON, as SPEC §2 defines it."""
    try:
        return _fast_compact(value).encode("utf-8", "surrogatepass")
    except TypeError:  # a JsonNumber (Decimal): keep its text exactly
        return dumps_compact(value).encode("utf-8", "surrogatepass")


class _Record:
    __slots__ = ("key", "payload", "topic")

    def __init__(self, topic: str, payload: bytes, key: bytes | None) -> None:
        self.topic = topic
        self.payload = payload
        self.key = key


def _event_ts(value: Any) -> tuple[str | None, int | None]:
    """The value's `ts` text and instant (us) when it is a valid wire timestamp."""
    if not isinstance(value, dict):
        return None, None
    text = value.get("ts")
    if not isinstance(text, str):
        return None, None
    try:
        return text, parse_instant(text)
    except TimestampError:
        return text, None


def _shift_raw(raw: bytes, old: str, new: str) -> bytes:
    """Replace the value of the first `"ts"` field in raw JSON text, leaving every other byte alone."""
    quoted_old = json.dumps(old).encode("utf-8")
    for m in _TS_FIELD.finditer(raw):
        start = m.end() - 1
        if raw.startswith(quoted_old, start):
            quoted_new = json.dumps(new).encode("utf-8")
            return raw[:start] + quoted_new + raw[start + len(quoted_old) :]
    return raw


class _Stats:
    def __init__(self) -> None:
        self.not_json = 0
        self.no_topic = 0
        self.too_large = 0
        self.ahead = 0  # live: sent more than 5 minutes before their (shifted) time


def _parse_line(line: bytes, stats: _Stats) -> tuple[str, Any, bool] | None:
    """(topic, value, value_is_raw_text) of an event-file line, or None (counted) when it has none."""
    try:
        doc = loads(line.decode("utf-8"))
    except (UnicodeDecodeError, NotJson):
        stats.not_json += 1
        return None
    topic = doc.get("topic") if isinstance(doc, dict) else None
    if topic not in INPUT_TOPICS or not isinstance(doc, dict) or "value" not in doc:
        stats.no_topic += 1
        return None
    value = doc["value"]
    return topic, value, isinstance(value, str)


async def replay(
    settings: Settings,
    lines: Iterable[tuple[int, bytes]],
    rate: float | None,
    live: bool,
    *,
    log: Log = _stderr,
) -> int:
    """Publish an event file's input records, keyed by customer_id; return how many were sent.

    Record timestamps: the emission-order time (running max of event `ts`, strictly
    increasing by at least 1 ms), or with `live` the wall clock, while every valid
    `ts` in the values moves by (now − first event ts), in whole seconds so the
    text keeps its offset and fraction. Lines that are not JSON or name no input
    topic are skipped and counted. `rate` (events/s) paces the sends.
    """
    from aiokafka.errors import MessageSizeTooLargeError

    stats = _Stats()
    began = time.monotonic()
    last_ms = -1
    high_us: int | None = None  # the latest event ts seen so far
    shift_s: int | None = None  # live: whole seconds added to every ts
    pending: list[_Record] = []  # leading records with no ts, before any ts is known

    def next_ms(candidate: int) -> int:
        nonlocal last_ms
        last_ms = candidate if candidate > last_ms else last_ms + 1
        return last_ms

    async def send(record: _Record, ts_ms: int) -> None:
        if rate:
            delay = began + out.sent / rate - time.monotonic()
            if delay > 0.001:
                await asyncio.sleep(delay)
        try:
            await out.send(settings.topic(record.topic), record.payload, record.key, ts_ms)
        except MessageSizeTooLargeError:
            stats.too_large += 1

    async with input_producer(
        settings, linger_ms=5 if rate else 20, max_batch_size=256 * 1024, acks=1
    ) as out:
        for _number, line in lines:
            parsed = _parse_line(line, stats)
            if parsed is None:
                continue
            topic, value, raw = parsed
            if raw:
                # A lone surrogate ("\ud800") can't be UTF-8: send its bytes anyway, as a broken
                # producer would, and let the worker dead-letter them.
                payload = value.encode("utf-8", "surrogatepass")
                try:
                    inner = loads(value)
                except NotJson:
                    inner = None
            else:
                inner = value
            # Keyed as simulate keys its dead letters: the id, even from a broken payload.
            cid = inner.get("customer_id") if isinstance(inner, dict) else (guess_key(value) if raw else None)
            key = cid.encode("utf-8", "surrogatepass") if isinstance(cid, str) else None
            ts_text, ts_us = _event_ts(inner)
            if ts_us is not None and live:
                if shift_s is None:
                    shift_s = round((time.time_ns() // 1000 - ts_us) / 1_000_000)
                assert ts_text is not None
                shifted = format_shifted(ts_text, shift_s)
                if shifted is not None:
                    ts_us += shift_s * 1_000_000
                    if ts_us > time.time_ns() // 1000 + FUTURE_TOLERANCE_US:
                        stats.ahead += 1
                    if raw:
                        payload = _shift_raw(payload, ts_text, shifted)
                    else:
                        value = {**value, "ts": shifted}
            if not raw:
                payload = _compact(value)
            record = _Record(topic, payload, key)
            if live:
                await send(record, next_ms(time.time_ns() // 1_000_000))
                continue
            if ts_us is not None:
                high_us = ts_us if high_us is None or ts_us > high_us else high_us
            if high_us is None:
                pending.append(record)
                continue
            if pending:
                first = high_us // _US_PER_MS - len(pending)
                for i, early in enumerate(pending):
                    await send(early, next_ms(first + i))
                pending.clear()
            await send(record, next_ms(high_us // _US_PER_MS))
        for early in pending:  # a file with no timestamps at all
            await send(early, next_ms(time.time_ns() // 1_000_000))
    sent = out.sent
    elapsed = max(time.monotonic() - began, 1e-9)
    log(f"replay: published {sent:,} records in {elapsed:.2f}s ({sent / elapsed:,.0f}/s)")
    skipped = {
        "not JSON": stats.not_json,
        "naming no input topic": stats.no_topic,
        "larger than the producer's max request size": stats.too_large,
    }
    for why, n in skipped.items():
        if n:
            log(f"replay: skipped {n:,} lines {why}")
    if stats.ahead:
        log(
            f"replay: {stats.ahead:,} events went out over 5 minutes before their shifted time "
            "(a worker dead-letters them as future_timestamp); use a lower --rate or a shorter file"
        )
    return sent


# --- capture ----------------------------------------------------------------------------------
def _capture_line(topic: str, raw: bytes | None) -> str:
    """One output record as an event-file line; a payload that is not JSON stays a raw string."""
    value: Any
    try:
        value = loads(raw.decode("utf-8")) if raw is not None else None
    except (UnicodeDecodeError, NotJson):
        value = raw.decode("utf-8", errors="replace") if raw is not None else None
    return dumps_compact({"topic": topic, "value": value}) + "\n"


async def _output_partitions(admin: Any, names: Iterable[str]) -> set[Any]:
    """Partitions of those output topics that exist."""
    from aiokafka.structs import TopicPartition

    existing = await existing_partitions(admin)
    return {TopicPartition(t, p) for t in names if t in existing for p in existing[t]}


async def capture(settings: Settings, out: TextIO, idle_seconds: float, *, log: Log = _stderr) -> int:
    """Write every record of the output topics, from the beginning, as event-file lines.

    A fresh consumer with no group (nothing committed) assigns itself the output
    topics' partitions. It looks for topics through all-topic metadata, once a
    second, so it never auto-creates one (Tansu would, with 4 partitions) and picks
    up one created while it waits; it keeps its own positions across re-assignments.
    It stops after `idle_seconds` without a new record: Tansu's end offsets are
    wrong, so "caught up" cannot be asked of the broker.
    """
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    names = {settings.topic(t): t for t in (*OUTPUT_TOPICS, SEGMENT_CHANGES)}  # those that exist
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await start_client(admin, settings)
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings), group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    try:
        await start_client(consumer, settings)
    except BrokerUnreachable:
        await close_quietly(admin)
        raise
    written = 0
    began = last = time.monotonic()
    looked = -1.0
    assigned: set[Any] = set()
    next_offset: dict[Any, int] = {}
    try:
        while (remaining := idle_seconds - (time.monotonic() - last)) > 0:
            if time.monotonic() - looked >= 1.0:
                looked = time.monotonic()
                found = await _output_partitions(admin, names)
                if not found <= assigned:
                    # A new assignment resets every position: put back the ones we hold.
                    assigned |= found
                    consumer.assign(sorted(assigned))
                    for tp in assigned:
                        if tp in next_offset:
                            consumer.seek(tp, next_offset[tp])
                    fresh = [tp for tp in assigned if tp not in next_offset]
                    if fresh:
                        await consumer.seek_to_beginning(*fresh)
            wait = min(remaining, 0.5, max(0.01, looked + 1.0 - time.monotonic()))
            if not assigned:
                await asyncio.sleep(wait)
                continue
            batches = await consumer.getmany(timeout_ms=max(1, int(wait * 1000)), max_records=5_000)
            chunk: list[str] = []
            for tp, records in batches.items():
                if records:
                    next_offset[tp] = records[-1].offset + 1
                    chunk.extend(_capture_line(names[tp.topic], rec.value) for rec in records)
            if chunk:
                last = time.monotonic()
                out.writelines(chunk)
                written += len(chunk)
        out.flush()
    except KafkaError as exc:
        raise KafkaIOError(f"reading from {settings.broker_url} failed: {exc}") from None
    finally:
        await close_quietly(consumer)
        await close_quietly(admin)
    log(f"capture: wrote {written:,} records in {time.monotonic() - began:.1f}s")
    return written
