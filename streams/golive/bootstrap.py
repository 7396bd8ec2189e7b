"""`tierstream bootstrap`: write a deployment's tables from a snapshot, so that a worker
started afterwards recovers them and consumes from the cut-over on (SPEC §9).

It writes what a worker writes: each customer's encoded state to the customers
table's changelog (`<app id>-customers-changelog`), on the partition its records
arrive on (the producers' partitioner), then one marker per partition, alone in the
partition's last batch, holding the clock (the end of day X, or the exported
partition's clock), the tier counts, and the last offset before the cut-over of each
input topic-partition. The worker then skips what the marker says is applied, exactly
as after a restart.

Nothing reaches the broker before everything is checked: the snapshot's files, the
history the rules need, the app id having no tables yet, the input topics' partition
counts. The encoded states are staged on disk first, so a refusal or a bad row leaves
the broker untouched.
"""

from __future__ import annotations

import asyncio
import struct
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from ..broker import KafkaIOError, client_kwargs, close_quietly, ensure_topics, start_client
from ..contract import marker_key, marker_value
from ..engine import codec
from ..engine.decode import INPUT_TOPICS
from ..engine.evaluate import series_specs
from ..engine.partition import PartitionEngine
from ..engine.partitioner import partition_for
from ..engine.portable import MissingHistory
from ..engine.rules import Rules
from ..settings import Settings
from .load import Source, history_error, open_source

CHUNK = 5_000


class BootstrapError(ValueError):
    """A refusal: one line naming what is wrong and the fix; nothing was written."""


@dataclass
class Summary:
    customers: int = 0
    rows_read: dict[str, int] = field(default_factory=dict)
    tiers: Counter[str] = field(default_factory=Counter)
    bytes_written: int = 0
    seconds: float = 0.0
    partitions: int = 0
    clock: str = ""
    offsets: dict[str, dict[int, int]] = field(default_factory=dict)  # topic -> partition -> first to consume
    retiered: int = 0  # customers whose exported tier the ladder no longer has
    warnings: list[str] = field(default_factory=list)  # the snapshot's, one line each


Progress = Callable[[str, int, int | None], None]  # (phase, done, total)


def read_offsets_file(path: Path, settings: Settings) -> dict[str, dict[int, int]]:
    """`topic,partition,offset` lines (the first offset to consume; bare or prefixed topic
    names; a header line is fine) or a JSON {topic: {partition: offset}}."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise BootstrapError(
            f"{path}: cannot read the offsets file ({exc.strerror}); check the path"
        ) from None
    out: dict[str, dict[int, int]] = {}
    bare = {settings.topic(t): t for t in INPUT_TOPICS}
    if text.lstrip().startswith("{"):
        try:
            doc = orjson.loads(text)
            rows = [(t, p, o) for t, parts in doc.items() for p, o in parts.items()]
        except (ValueError, AttributeError):
            raise BootstrapError(f"{path}: not a JSON object of topic -> partition -> offset") from None
        numbered: list[tuple[int, tuple[Any, ...]]] = [(1, row) for row in rows]
    else:
        numbered = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.startswith(("#", "topic")):
                continue
            numbered.append((n, tuple(x.strip() for x in line.split(","))))
    for n, row in numbered:
        if len(row) != 3:
            raise BootstrapError(f"{path}:{n}: write topic,partition,offset (the first offset to consume)")
        topic, partition, offset = row
        topic = bare.get(str(topic), str(topic))
        if topic not in INPUT_TOPICS:
            raise BootstrapError(f"{path}:{n}: {topic!r} is not an input topic ({', '.join(INPUT_TOPICS)})")
        try:
            p, o = int(partition), int(offset)
        except (TypeError, ValueError):
            raise BootstrapError(f"{path}:{n}: partition and offset must be whole numbers") from None
        if not 0 <= p < settings.partitions or o < 0:
            raise BootstrapError(
                f"{path}:{n}: partition {p} offset {o}; partitions are 0-{settings.partitions - 1} "
                "(TIERSTREAM_PARTITIONS) and offsets ≥ 0"
            )
        out.setdefault(topic, {})[p] = o
    missing = [
        f"{t}[{p}]" for t in INPUT_TOPICS for p in range(settings.partitions) if p not in out.get(t, {})
    ]
    if missing:
        raise BootstrapError(
            f"{path}: no offset for {', '.join(missing[:4])}{' …' if len(missing) > 4 else ''}; give every input topic-partition"
        )
    return out


def stage(
    settings: Settings, rules: Rules, source: Source, progress: Progress | None, staging: Path
) -> tuple[Summary, dict[int, tuple[int | None, Counter[str]]]]:
    """Seed and encode every customer into a staging file; per partition (clock, tiers)."""
    engine = PartitionEngine(rules)
    specs = engine.ledger.specs
    n = settings.partitions
    same_layout = (
        source.manifest is not None
        and source.manifest.partitioner == settings.partitioner
        and source.manifest.partition_count == n
    )
    summary = Summary(rows_read=dict(source.rows_read), partitions=n)
    parts: dict[int, tuple[int | None, Counter[str]]] = {}
    tier_ids = rules.tier_ids
    with staging.open("wb") as f:
        for kept_on, record in source.records:
            try:
                c = engine.seed(record)
            except MissingHistory as exc:
                raise BootstrapError(str(history_error(record, exc, source))) from None
            if record.tier is not None and record.tier not in tier_ids:
                summary.retiered += 1
            p = partition_for(record.customer_id, n, settings.partitioner)
            key = record.customer_id.encode("utf-8")
            blob = codec.encode(c, specs, p)
            f.write(struct.pack(">HII", p, len(key), len(blob)) + key + blob)
            clock = source.clocks.get(kept_on, source.clock) if same_layout else source.clock
            held = parts.get(p)
            counts = held[1] if held is not None else Counter()
            parts[p] = (clock if held is None or held[0] is None else max(held[0], clock), counts)
            counts[tier_ids[c.tier]] += 1
            summary.tiers[tier_ids[c.tier]] += 1
            summary.customers += 1
            summary.bytes_written += len(key) + len(blob)
            if progress is not None and summary.customers % 1000 == 0:
                progress("staging", summary.customers, source.customers)
    for p in range(n):  # partitions with no customer still start at the cut-over clock
        if p not in parts:
            parts[p] = (source.clocks.get(p, source.clock) if same_layout else source.clock, Counter())
    return summary, parts


async def _topic_partitions(admin: Any, names: list[str]) -> dict[str, int]:
    """Partition counts of the topics that exist (never creating one: the broker
    auto-creates any topic a client asks metadata for)."""
    existing = set(await admin.list_topics())
    present = [t for t in names if t in existing]
    if not present:
        return {}
    described = await admin.describe_topics(present)
    return {d["topic"]: len(d["partitions"]) for d in described}


async def cut_over_offsets(settings: Settings, from_us: int) -> dict[str, dict[int, int]]:
    """Per input topic-partition, the offset of the first record stamped at or after the
    instant (or the end). The broker's answer to ListOffsets by time is only a place to
    start reading: the local broker answers with the first offset of the *batch* that
    holds the record (measured: every partition of a replayed file answered 0), so the
    records are read from there to the first one at or after the instant. The end comes
    from a fetch's high watermark, as ListOffsets(latest) is wrong there too."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        **client_kwargs(settings), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await start_client(consumer, settings)
    ts_ms = -(-from_us // 1000)  # record timestamps are milliseconds: the first at or after
    out: dict[str, dict[int, int]] = {}
    try:
        tps = [TopicPartition(settings.topic(t), p) for t in INPUT_TOPICS for p in range(settings.partitions)]
        found = await consumer.offsets_for_times(dict.fromkeys(tps, ts_ms))
        consumer.assign(tps)
        for tp, bare in zip(tps, [t for t in INPUT_TOPICS for _ in range(settings.partitions)], strict=True):
            hit = found.get(tp)
            consumer.seek(tp, hit.offset if hit is not None else 0)
            out.setdefault(bare, {})[tp.partition] = await _first_at_or_after(consumer, tp, ts_ms)
    finally:
        await close_quietly(consumer)
    return out


async def _first_at_or_after(consumer: Any, tp: Any, ts_ms: int) -> int:
    """Read from the consumer's position to the first record stamped ≥ ts_ms; the end
    (high watermark) when there is none."""
    while True:
        batch = await consumer.getmany(tp, timeout_ms=1000, max_records=5000)
        records = batch.get(tp, [])
        for record in records:
            if record.timestamp >= ts_ms:
                return int(record.offset)
        high = consumer.highwater(tp)
        if not records and (high is None or await consumer.position(tp) >= high):
            return int(high or 0)


async def write_tables(
    settings: Settings,
    rules: Rules,
    staging: Path,
    parts: dict[int, tuple[int | None, Counter[str]]],
    offsets: dict[str, dict[int, int]] | None,
    from_us: int | None,
    summary: Summary,
    progress: Progress | None,
) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await start_client(admin, settings)
    changelog = settings.changelog_topic
    try:
        counts = await _topic_partitions(admin, [changelog, *settings.input_topics])
        if changelog in counts:
            raise BootstrapError(
                f"app id {settings.app_id!r} already has tables (topic {changelog}); bootstrap a new "
                "TIERSTREAM_APP_ID (nothing was written)"
            )
        wrong = {t: k for t, k in counts.items() if t != changelog and k != settings.partitions}
        if wrong:
            listed = ", ".join(f"{t} has {k}" for t, k in wrong.items())
            raise BootstrapError(
                f"input topics {listed} partitions, TIERSTREAM_PARTITIONS is {settings.partitions}: set it to the "
                "topics' count (customers go to the partitions their records arrive on); nothing was written"
            )
        await ensure_topics(settings, settings.input_topics, settings.partitions)
        response = await admin.create_topics(
            [NewTopic(changelog, settings.partitions, 1, topic_configs={"cleanup.policy": "compact"})]
        )
        for entry in response.to_object()["topic_errors"]:
            if entry["error_code"] != 0:
                raise BootstrapError(
                    f"cannot create {changelog}: error {entry['error_code']} ({entry.get('error_message')})"
                )
    finally:
        await close_quietly(admin)
    if offsets is None:
        assert from_us is not None
        offsets = await cut_over_offsets(settings, from_us)
    summary.offsets = offsets
    producer = AIOKafkaProducer(**client_kwargs(settings), max_request_size=4 * 1024 * 1024, linger_ms=5)
    await start_client(producer, settings)
    try:
        pending: list[asyncio.Future[Any]] = []
        written = 0
        with staging.open("rb") as f:
            while head := f.read(10):
                p, klen, vlen = struct.unpack(">HII", head)
                key, blob = f.read(klen), f.read(vlen)
                pending.append(await producer.send(changelog, blob, key=key, partition=p))
                written += 1
                if len(pending) >= CHUNK:
                    await asyncio.gather(*pending)
                    pending.clear()
                    if progress is not None:
                        progress("writing", written, summary.customers)
        await asyncio.gather(*pending)
        await producer.flush()
        markers = []
        index = {t: i for i, t in enumerate(INPUT_TOPICS)}
        cal = PartitionEngine(rules).calendar
        for p, (clock, tiers) in sorted(parts.items()):
            day = cal.day_of(clock) if clock is not None else None
            applied = {index[t]: offsets[t][p] - 1 for t in INPUT_TOPICS}
            shape = codec.state_shape(rules.tier_ids, series_specs(rules))
            value = marker_value(
                shape, clock, day, day, {t: tiers.get(t, 0) for t in rules.tier_ids}, applied
            )
            markers.append(await producer.send(changelog, value, key=marker_key(p), partition=p))
            summary.bytes_written += len(value)
        await asyncio.gather(*markers)
        if progress is not None:
            progress("writing", written, summary.customers)
    except KafkaError as exc:
        raise KafkaIOError(f"writing {changelog} on {settings.broker_url} failed: {exc}") from None
    finally:
        await close_quietly(producer)


def bootstrap(
    settings: Settings,
    rules: Rules,
    directory: Path,
    as_of: str | None,
    *,
    from_us: int | None = None,
    offsets_file: Path | None = None,
    progress: Progress | None = None,
) -> Summary:
    """Check, stage, then write the tables. Raises BootstrapError / ValueError (one line)
    before anything is written, KafkaIOError when the broker fails."""
    started = time.monotonic()
    if (from_us is None) == (offsets_file is None):
        raise BootstrapError("give the cut-over as --from TS or as --offsets FILE (one of them)")
    offsets = read_offsets_file(offsets_file, settings) if offsets_file is not None else None
    source = open_source(directory, rules, as_of)
    with tempfile.TemporaryDirectory(prefix="tierstream-bootstrap-") as tmp:
        staging = Path(tmp) / "states.bin"
        summary, parts = stage(settings, rules, source, progress, staging)
        summary.warnings = list(source.warnings)
        summary.clock = PartitionEngine(rules).calendar.isoformat(source.clock)
        asyncio.run(write_tables(settings, rules, staging, parts, offsets, from_us, summary, progress))
    summary.seconds = time.monotonic() - started
    return summary
