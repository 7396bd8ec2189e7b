"""Open a snapshot directory of either kind (a warehouse snapshot or a state export)
and give its customer records with the partition clock they start from."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.evaluate import series_specs
from ..engine.partition import PartitionEngine
from ..engine.portable import CustomerRecord, MissingHistory
from ..engine.rules import Rules
from ..engine.timeutil import Calendar
from . import statefile, warehouse


class LoadError(ValueError):
    """A snapshot or export that cannot start these rules: one line with the fix."""


@dataclass
class Source:
    """Records to start from, each with the partition it was kept on (None: unknown)."""

    directory: Path
    kind: str  # "warehouse" | "export"
    customers: int
    rows_read: dict[str, int]
    #: the clock per exported partition; a warehouse snapshot has one: the end of day X
    clocks: dict[int | None, int]
    records: Iterator[tuple[int | None, CustomerRecord]]
    manifest: statefile.Manifest | None = None
    #: one line each, for the command to print (e.g. a history that may be cut short)
    warnings: list[str] = field(default_factory=list)

    @property
    def clock(self) -> int:
        return max(self.clocks.values())


def open_source(directory: Path, rules: Rules, as_of: str | None) -> Source:
    """Raises LoadError (and SnapshotError/ExportError, both ValueErrors) with one line."""
    cal = Calendar(rules.timezone)
    if statefile.is_export(directory):
        manifest = statefile.read_manifest(directory)
        statefile.check_covers(manifest, rules, {s.name: s.size for s in series_specs(rules)}, directory)
        clocks: dict[int | None, int] = {
            p: c.clock for p, c in manifest.partitions.items() if c.clock is not None
        }
        if not clocks:
            raise LoadError(
                f"{directory}: the export holds no partition clock (an empty deployment); nothing to start from"
            )
        rows = statefile.read_rows(directory)
        return Source(
            directory,
            "export",
            manifest.customers,
            {"customers": manifest.customers},
            clocks,
            ((p, r) for p, r in rows),
            manifest,
        )
    if as_of is None:
        raise LoadError(
            f"{directory}: a warehouse snapshot needs --as-of DATE, the business day it closes (YYYY-MM-DD)"
        )
    try:
        day = Calendar.day_from_text(as_of)
    except ValueError:
        raise LoadError(f"--as-of {as_of!r} is not a date like 2026-03-31") from None
    snap = warehouse.open_snapshot(directory, rules, day)
    end = cal.boundary(day + 1) - 1
    return Source(
        directory,
        "warehouse",
        snap.customers,
        dict(snap.rows),
        {None: end},
        ((None, r) for r in snap.records()),
        warnings=list(snap.warnings),
    )


def history_error(record: CustomerRecord, error: MissingHistory, source: Source) -> LoadError:
    return LoadError(f"{source.directory}: customer {record.customer_id!r}: {error}")


def start_engine(engine: PartitionEngine, source: Source) -> int:
    """Seed every record into one engine (as `simulate --snapshot` does); returns the count."""
    engine.start_at(source.clock)
    n = 0
    for _, record in source.records:
        try:
            engine.customers[record.customer_id] = engine.seed(record)
        except MissingHistory as exc:
            raise history_error(record, exc, source) from None
        n += 1
    return n
