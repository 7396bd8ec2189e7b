"""Event files to and from a real broker: `tierstream replay` and `tierstream capture` (SPEC §8).

Replay sets every record's Kafka timestamp to the file's emission order (the running
maximum of event `ts`, strictly increasing), because the worker merges its three
input topics per partition by record timestamp: that is how the broker carries the
file's order across topics. Capture never trusts end offsets (Tansu reports them
wrong, see LOCAL-STACK.md); it stops when the output topics stay quiet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import ssl
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any, TextIO

from .engine.decode import INPUT_TOPICS, guess_key
from .engine.evaluate import OUTPUT_TOPICS, SEGMENT_CHANGES
from .engine.jsonio import NotJson, dumps_compact, loads
from .engine.timeutil import TimestampError, parse_instant
from .preflight import TopicFacts
from .settings import Settings

__all__ = [
    "BrokerUnreachable",
    "KafkaIOError",
    "Publisher",
    "broker_ssl_context",
    "capture",
    "client_kwargs",
    "describe_topics",
    "ensure_topics",
    "format_shifted",
    "input_producer",
    "replay",
]

#: Sends in flight before we wait for their acknowledgements (bounded memory, errors surface early).
CHUNK = 5_000
#: Replay's record timestamps are milliseconds.
_US_PER_MS = 1_000
#: SPEC §6: a worker refuses events more than 5 minutes ahead of its wall clock.
_FUTURE_US = 300 * 1_000_000
_TS_FIELD = re.compile(rb'"ts"\s*:\s*"')

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class KafkaIOError(RuntimeError):
    """Talking to the broker failed; the message is one line for the user."""


class BrokerUnreachable(KafkaIOError):
    def __init__(self, url: str) -> None:
        super().__init__(f"cannot reach the broker at {url}; start it or set TIERSTREAM_BROKER_URL")
        self.url = url


# --- clients ----------------------------------------------------------------------------------
def client_kwargs(settings: Settings) -> dict[str, Any]:
    """aiokafka connection arguments (bootstrap, TLS, SASL) from the one settings object."""
    servers = settings.bootstrap_servers
    for server in servers or [""]:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            raise KafkaIOError(
                f"broker URL {settings.broker_url!r} is not like kafka://host:9092[;host:port]; "
                "fix --broker or TIERSTREAM_BROKER_URL"
            )
    kwargs: dict[str, Any] = {"bootstrap_servers": servers}
    protocol = settings.broker_security_protocol.upper()
    if protocol != "PLAINTEXT":
        kwargs["security_protocol"] = protocol
    context = broker_ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = settings.broker_sasl_mechanism
        kwargs["sasl_plain_username"] = settings.broker_sasl_username
        kwargs["sasl_plain_password"] = settings.broker_sasl_password.get_secret_value()
    return kwargs


_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def broker_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL (the CA file, else the system's CAs); None without TLS."""
    protocol = settings.broker_security_protocol.upper()
    if protocol not in _PROTOCOLS:
        raise KafkaIOError(
            f"TIERSTREAM_BROKER_SECURITY_PROTOCOL is {settings.broker_security_protocol!r}; "
            f"use one of {', '.join(_PROTOCOLS)}"
        )
    if protocol not in ("SSL", "SASL_SSL"):
        return None
    from aiokafka.helpers import create_ssl_context

    ca_file = settings.broker_ca_file or None
    try:
        context: ssl.SSLContext = create_ssl_context(cafile=ca_file)
        return context
    except (OSError, ssl.SSLError) as exc:
        raise KafkaIOError(
            f"TIERSTREAM_BROKER_CA_FILE {ca_file}: cannot load it as a PEM CA bundle "
            f"({getattr(exc, 'strerror', None) or exc}); point it at the CA that signed the brokers' certificates"
        ) from None


def _tls_handshakes(settings: Settings, context: ssl.SSLContext) -> Iterator[tuple[str, str | None]]:
    """(server, None if a TLS handshake with it worked, else why not) for each bootstrap server
    that accepts a TCP connection."""
    import socket

    for server in settings.bootstrap_servers:
        host, _, port = server.rpartition(":")
        try:
            raw = socket.create_connection((host, int(port)), timeout=5)
        except OSError:
            continue
        try:
            with raw, context.wrap_socket(raw, server_hostname=host):
                pass
        except ssl.SSLError as exc:
            yield server, str(exc.reason or exc)
        except OSError as exc:
            yield server, str(exc)
        else:
            yield server, None


def _tls_refusal(settings: Settings, context: ssl.SSLContext) -> str | None:
    """Why the TLS handshake with the first reachable bootstrap broker fails, or None."""
    for server, why in _tls_handshakes(settings, context):
        return None if why is None else f"the TLS handshake with {server} failed ({why})"
    return None


def _speaks_tls(settings: Settings) -> str | None:
    """The first reachable bootstrap server, if it completes a TLS handshake (certificate unchecked)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    for server, why in _tls_handshakes(settings, context):
        return server if why is None else None
    return None


def _as_settings(settings_or_bootstrap: Settings | str | Sequence[str]) -> Settings:
    if isinstance(settings_or_bootstrap, Settings):
        return settings_or_bootstrap
    if isinstance(settings_or_bootstrap, str):
        url = settings_or_bootstrap
    else:
        url = ";".join(settings_or_bootstrap)
    if not url.startswith("kafka://"):
        url = f"kafka://{url}"
    return Settings(broker_url=url)


async def _start(client: Any, settings: Settings) -> None:
    """Start an aiokafka client; a broker that does not answer becomes BrokerUnreachable."""
    from aiokafka.errors import KafkaConnectionError

    try:
        await client.start()
    except KafkaConnectionError:
        await _close_quietly(client)
        context = broker_ssl_context(settings)
        if context is None:
            tls_server = await asyncio.to_thread(_speaks_tls, settings)
            if tls_server is not None:
                raise KafkaIOError(
                    f"the broker at {tls_server} speaks TLS; set TIERSTREAM_BROKER_SECURITY_PROTOCOL=SSL "
                    "(or SASL_SSL) and TIERSTREAM_BROKER_CA_FILE"
                ) from None
        refusal = await asyncio.to_thread(_tls_refusal, settings, context) if context is not None else None
        if refusal is not None:
            raise KafkaIOError(
                f"{refusal}; check TIERSTREAM_BROKER_CA_FILE (the CA that signed the brokers' "
                "certificates) and that the URL names the brokers' TLS listener"
            ) from None
        raise BrokerUnreachable(settings.broker_url) from None


async def _close_quietly(client: Any) -> None:
    close = getattr(client, "close", None) or client.stop
    # A consumer stopped before its background task first ran raises CancelledError
    # (aiokafka issue #647): let that task start.
    await asyncio.sleep(0)
    with contextlib.suppress(Exception):  # closing a client that never connected may fail
        await close()


async def ensure_topics(
    settings_or_bootstrap: Settings | str | Sequence[str], names: Sequence[str], partitions: int
) -> list[str]:
    """Create the missing topics with `partitions` partitions (replication 1); return those created.

    Run it before any client names a topic: Tansu auto-creates any topic a client
    asks about with 4 partitions, which breaks co-partitioning of the inputs.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    settings = _as_settings(settings_or_bootstrap)
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await _start(admin, settings)
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in dict.fromkeys(names) if n not in existing]
        if not missing:
            return []
        response = await admin.create_topics([NewTopic(n, partitions, 1) for n in missing])
        created = []
        for entry in response.to_object()["topic_errors"]:
            code = entry["error_code"]
            if code == 0:
                created.append(entry["topic"])
            elif code != 36:  # TOPIC_ALREADY_EXISTS: someone else was quicker; fine
                raise KafkaIOError(
                    f"cannot create topic {entry['topic']!r}: error {code} "
                    f"({entry.get('error_message') or 'no message'})"
                )
        return created
    finally:
        await _close_quietly(admin)


def producers_partitioner(name: str) -> Callable[[bytes | None, list[int], list[int]], int]:
    """An aiokafka partitioner that puts a key where the bank's producers put it."""
    import random

    from .engine.partitioner import partitioner

    pick = partitioner(name)

    def choose(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return random.choice(available or all_partitions)
        ordered = sorted(all_partitions)
        return ordered[pick(key, len(ordered))]

    return choose


# --- publishing -------------------------------------------------------------------------------
class Publisher:
    """Sends records and keeps at most CHUNK of them unacknowledged (bounded memory, early errors)."""

    def __init__(self, producer: Any) -> None:
        self._producer = producer
        self._in_flight: list[asyncio.Future[Any]] = []
        self.sent = 0

    async def send(
        self, topic: str, payload: bytes, key: bytes | None, timestamp_ms: int | None = None
    ) -> None:
        """Queue one record (full topic name); the producer's own errors propagate."""
        self._in_flight.append(await self._producer.send(topic, payload, key=key, timestamp_ms=timestamp_ms))
        self.sent += 1
        if len(self._in_flight) >= CHUNK:
            await self.drain()

    async def drain(self) -> None:
        if self._in_flight:
            await asyncio.gather(*self._in_flight)
            self._in_flight.clear()


@contextlib.asynccontextmanager
async def input_producer(settings: Settings, **options: Any) -> AsyncIterator[Publisher]:
    """A producer for the input topics, as a `Publisher`, for `replay` and `dlq replay`.

    Creates the input topics first (with the configured partitions, before any client
    names them). On leaving the block normally every record is acknowledged and
    flushed; broker trouble anywhere becomes a one-line KafkaIOError; the producer is
    always closed. `options` are AIOKafkaProducer's (linger_ms, acks, ...).
    """
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    await ensure_topics(settings, settings.input_topics, settings.partitions)
    producer = AIOKafkaProducer(
        **client_kwargs(settings),
        max_request_size=4 * 1024 * 1024,
        partitioner=producers_partitioner(settings.partitioner),
        **options,
    )
    await _start(producer, settings)
    publisher = Publisher(producer)
    try:
        yield publisher
        await publisher.drain()
        await producer.flush()
    except KafkaError as exc:
        raise KafkaIOError(f"publishing to {settings.broker_url} failed: {exc}") from None
    finally:
        await _close_quietly(producer)


# --- replay -----------------------------------------------------------------------------------
_WIRE_TS = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})\Z"
)


def format_shifted(text: str, shift_seconds: int) -> str | None:
    """`text` (a valid wire timestamp) moved by whole seconds, in its own offset and fraction; or None."""
    from datetime import datetime, timedelta

    m = _WIRE_TS.match(text)
    if m is None:
        return None
    base, frac, offset = m.groups()
    try:
        moved = datetime.fromisoformat(base) + timedelta(seconds=shift_seconds)
    except (ValueError, OverflowError):
        return None
    return moved.strftime("%Y-%m-%dT%H:%M:%S") + (frac or "") + offset


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
                    if ts_us > time.time_ns() // 1000 + _FUTURE_US:
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


async def _existing_partitions(admin: Any) -> dict[str, list[int]]:
    """Every topic's partition numbers, from all-topic metadata: naming topics in a metadata
    request would auto-create the missing ones (Tansu does, with 4 partitions)."""
    return {
        t["topic"]: [p["partition"] for p in t["partitions"]]
        for t in await admin.describe_topics(None)
        if t["error_code"] == 0
    }


async def _output_partitions(admin: Any, names: Iterable[str]) -> set[Any]:
    """Partitions of those output topics that exist."""
    from aiokafka.structs import TopicPartition

    existing = await _existing_partitions(admin)
    return {TopicPartition(t, p) for t in names if t in existing for p in existing[t]}


async def describe_topics(settings: Settings, names: Sequence[str]) -> dict[str, TopicFacts]:
    """Partition count and cleanup policy of those of `names` that exist; creates none."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await _start(admin, settings)
    try:
        existing = await _existing_partitions(admin)
        found = [n for n in dict.fromkeys(names) if n in existing]
    except KafkaError as exc:
        await _close_quietly(admin)
        raise KafkaIOError(f"reading topic metadata from {settings.broker_url} failed: {exc}") from None
    policies: dict[str, str] = {}
    # Every config of each topic: Tansu drops the connection when asked for named ones.
    resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in found]
    try:
        # Only warnings depend on the policy: a broker that will not tell leaves it unknown.
        with contextlib.suppress(KafkaError):
            for response in await admin.describe_configs(resources) if resources else ():
                for resource in response.to_object()["resources"]:
                    for entry in resource["config_entries"] if resource["error_code"] == 0 else ():
                        if entry["config_names"] == "cleanup.policy" and entry["config_value"]:
                            policies[resource["resource_name"]] = entry["config_value"]
    finally:
        await _close_quietly(admin)
    return {n: TopicFacts(len(existing[n]), policies.get(n)) for n in found}


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
    await _start(admin, settings)
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings), group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    try:
        await _start(consumer, settings)
    except BrokerUnreachable:
        await _close_quietly(admin)
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
        await _close_quietly(consumer)
        await _close_quietly(admin)
    log(f"capture: wrote {written:,} records in {time.monotonic() - began:.1f}s")
    return written
