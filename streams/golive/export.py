"""`tierstream export`: a deployment's tables (or an engine's state) as a state export."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import orjson

from ..contract import marker_partition
from ..engine import codec
from ..engine.decode import INPUT_TOPICS
from ..engine.evaluate import series_specs
from ..engine.partition import PartitionEngine
from ..engine.portable import CustomerRecord, to_record
from ..engine.rules import Rules
from ..settings import Settings
from .statefile import ExportError, Manifest, PartitionClock, atomic_dir, finish_dir, write_export


def rules_manifest(
    rules: Rules, partitions: dict[int, PartitionClock], partitioner: str, app_id: str = ""
) -> Manifest:
    """What state kept under `rules` covers: its lateness and each day series' length."""
    return Manifest(
        scheme=rules.scheme,
        version=rules.version,
        timezone=rules.timezone,
        lateness_days=rules.max_lateness_days,
        series={s.name: s.size for s in series_specs(rules)},
        partitions=partitions,
        partitioner=partitioner,
        customers=0,
        app_id=app_id,
    )


def engine_manifest(engine: PartitionEngine, rules: Rules, partitioner: str) -> Manifest:
    """`simulate --export`: one partition, the engine's clock."""
    return rules_manifest(rules, {0: PartitionClock(engine.clock)}, partitioner)


def export_deployment(settings: Settings, rules: Rules, out: Path, fmt: str = "jsonl") -> Manifest:
    """Every customer of a deployment's tables (read from the changelog end to end) and
    each partition's marker, as a state export in `out` (a new folder)."""
    import asyncio

    from ..tools.rebuild import read_changelog

    tables = asyncio.run(read_changelog(settings))
    engine = PartitionEngine(rules)
    shape = codec.state_shape(rules.tier_ids, series_specs(rules))
    partitions: dict[int, PartitionClock] = {}
    for key, value in tables.items():
        p = marker_partition(key)
        if p is None:
            continue
        doc = orjson.loads(value)
        why = codec.shape_mismatch(doc["shape"], shape) if doc.get("shape") else None
        if why is not None:
            raise ExportError(
                f"the tables of app id {settings.app_id!r} were written under rules of another shape than "
                f"{rules.source} ({why}); export with the rules the deployment runs (--rules)"
            )
        offsets = {INPUT_TOPICS[int(i)]: int(o) for i, o in doc.get("offsets", {}).items()}
        partitions[p] = PartitionClock(doc.get("clock"), offsets)
    if not partitions:
        raise ExportError(
            f"app id {settings.app_id!r} has no tables on {settings.broker_url} (topic "
            f"{settings.changelog_topic} is empty or missing); check TIERSTREAM_APP_ID"
        )
    manifest = rules_manifest(rules, partitions, settings.partitioner, settings.app_id)
    manifest.partition_count = settings.partitions
    specs, tier_ids = engine.ledger.specs, rules.tier_ids

    def rows() -> Iterator[tuple[int, CustomerRecord]]:
        for key, value in sorted(tables.items()):
            if marker_partition(key) is not None:
                continue
            cid = key.decode("utf-8")
            yield (
                codec.partition_of(value),
                to_record(cid, codec.decode(value, specs), engine.ledger, tier_ids),
            )

    work = atomic_dir(out)
    try:
        write_export(work, manifest, rows(), engine.calendar, fmt)
        finish_dir(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest
