"""The lossless state export (SPEC §9): every field of every customer, and each
partition's clock, as a directory a new deployment bootstraps from.

Layout: `manifest.json` (format, the rules the state was kept under, the lateness
and day-series lengths it covers, each partition's clock and input offsets) and
`customers.jsonl` — or `customers.parquet`, the same columns with the nested fields
as JSON text. One customer per row:

| field | meaning |
|---|---|
| customer_id, partition | the id, and the partition it was kept on |
| first_seen, day, last_activity, below_since | business days (YYYY-MM-DD; empty: none) |
| last_instant, tier_since | RFC 3339 instants in the rules' timezone |
| tier, dormant_fired, churn_risk | the tier id held; the dormant spell and churn-risk flags |
| series | {name: [per-day values, oldest first, ending on `day`]} (money in fen) |
| accounts | {account: [[day ordinal, ts µs, event_id, fen, liability], ...]} |
| attrs | {name: [ts µs, event_id, value]} (a decimal number as {"d": text}) |
| opportunities, warnings | {target tier id / reason: business day ordinal of the last one} |
| seen | [[event-id fingerprint, business day ordinal], ...] within the lateness horizon |
| segments | {lifecycle/rfm/grid: value as last published} (absent: none yet; "": set at the next boundary without an output) |
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from ..engine.portable import CustomerRecord
from ..engine.rules import Rules
from ..engine.timeutil import Calendar, parse_instant

FORMAT = "tierstream-state-export"
#: the fields held as JSON text in the Parquet form
NESTED = ("series", "accounts", "attrs", "opportunities", "warnings", "seen", "segments")
VERSION = 1


class ExportError(ValueError):
    """An export directory that cannot be read: one line with the file and the fix."""


@dataclass
class PartitionClock:
    clock: int | None
    offsets: dict[str, int] = field(default_factory=dict)  # input topic (bare name) -> last applied


@dataclass
class Manifest:
    scheme: str
    version: str
    timezone: str
    lateness_days: int
    series: dict[str, int]  # name -> days kept
    partitions: dict[int, PartitionClock]
    partitioner: str
    customers: int
    app_id: str = ""
    partition_count: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": VERSION,
            "app_id": self.app_id,
            "rules": {"scheme": self.scheme, "version": self.version, "timezone": self.timezone},
            "lateness_days": self.lateness_days,
            "series_days": self.series,
            "partitioner": self.partitioner,
            "partition_count": self.partition_count,
            "partitions": {
                str(p): {"clock": c.clock, "offsets": c.offsets} for p, c in sorted(self.partitions.items())
            },
            "customers": self.customers,
        }


def is_export(directory: Path) -> bool:
    return (directory / "manifest.json").is_file()


def _day(text: str | None) -> int | None:
    return Calendar.day_from_text(text) if text else None


def _attr_out(value: Any) -> Any:
    return {"d": str(value)} if isinstance(value, Decimal) else value


def _attr_in(value: Any) -> Any:
    return Decimal(value["d"]) if isinstance(value, dict) else value


def record_row(rec: CustomerRecord, partition: int, cal: Calendar) -> dict[str, Any]:
    day = Calendar.day_text
    return {
        "customer_id": rec.customer_id,
        "partition": partition,
        "first_seen": day(rec.first_day),
        "day": day(rec.day),
        "last_activity": day(rec.last_txn_day) if rec.last_txn_day is not None else None,
        "below_since": day(rec.below_since) if rec.below_since is not None else None,
        "last_instant": cal.isoformat(rec.last_instant),
        "tier_since": cal.isoformat(rec.tier_since),
        "tier": rec.tier,
        "dormant_fired": rec.dormant_fired,
        "churn_risk": rec.churn_risk,
        "series": rec.series,
        "accounts": rec.accounts,
        "attrs": {name: [ts, eid, _attr_out(v)] for name, (ts, eid, v) in rec.attrs.items()},
        "opportunities": rec.opportunities,
        "warnings": rec.warnings,
        "seen": [[k, v] for k, v in rec.seen.items()],
        "segments": rec.segments,
    }


def row_record(row: dict[str, Any]) -> tuple[int, CustomerRecord]:
    rec = CustomerRecord(
        customer_id=row["customer_id"],
        first_day=Calendar.day_from_text(row["first_seen"]),
        day=Calendar.day_from_text(row["day"]),
        last_instant=parse_instant(row["last_instant"]),
        tier=row["tier"],
        tier_since=parse_instant(row["tier_since"]),
        below_since=_day(row["below_since"]),
        last_txn_day=_day(row["last_activity"]),
        dormant_fired=bool(row["dormant_fired"]),
        churn_risk=bool(row["churn_risk"]),
        accounts={acc: [list(o) for o in obs] for acc, obs in row["accounts"].items()},
        attrs={name: (ts, eid, _attr_in(v)) for name, (ts, eid, v) in row["attrs"].items()},
        series={name: list(values) for name, values in row["series"].items()},
        opportunities=dict(row["opportunities"]),
        warnings=dict(row["warnings"]),
        seen={int(k): int(v) for k, v in row["seen"]},
        segments=dict(row.get("segments") or {}),  # exports before segments have none
    )
    return int(row["partition"]), rec


def write_export(
    out: Path,
    manifest: Manifest,
    rows: Iterable[tuple[int, CustomerRecord]],
    cal: Calendar,
    fmt: str = "jsonl",
) -> int:
    """Write into `out` (a new, empty directory the caller renames into place)."""
    n = 0
    jsonl = out / "customers.jsonl"
    with jsonl.open("wb") as f:
        for partition, rec in rows:
            f.write(orjson.dumps(record_row(rec, partition, cal)) + b"\n")
            n += 1
    if fmt == "parquet":
        import duckdb

        columns = {
            "customer_id": "VARCHAR", "partition": "INTEGER", "first_seen": "VARCHAR", "day": "VARCHAR",
            "last_activity": "VARCHAR", "below_since": "VARCHAR", "last_instant": "VARCHAR",
            "tier_since": "VARCHAR", "tier": "VARCHAR", "dormant_fired": "BOOLEAN", "churn_risk": "BOOLEAN",
            **dict.fromkeys(NESTED, "JSON"),
        }  # fmt: skip
        spec = ", ".join(f"'{k}': '{v}'" for k, v in columns.items())
        con = duckdb.connect()
        con.execute(
            f"COPY (SELECT * FROM read_json('{jsonl}', format='newline_delimited', columns={{{spec}}})) "
            f"TO '{out / 'customers.parquet'}' (FORMAT parquet)"
        )
        con.close()
        jsonl.unlink()
    manifest.customers = n
    (out / "manifest.json").write_text(json.dumps(manifest.to_json(), indent=2) + "\n", "utf-8")
    return n


def read_manifest(directory: Path) -> Manifest:
    path = directory / "manifest.json"
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path}: not a readable state export manifest ({exc}); export again") from None
    if doc.get("format") != FORMAT or doc.get("format_version") != VERSION:
        raise ExportError(
            f"{path}: not a {FORMAT} version {VERSION} (format {doc.get('format')!r} "
            f"{doc.get('format_version')!r}); export it with this version of tierstream"
        )
    rules = doc["rules"]
    return Manifest(
        scheme=rules["scheme"],
        version=rules["version"],
        timezone=rules["timezone"],
        lateness_days=int(doc["lateness_days"]),
        series={k: int(v) for k, v in doc["series_days"].items()},
        partitions={
            int(p): PartitionClock(c["clock"], dict(c.get("offsets", {})))
            for p, c in doc["partitions"].items()
        },
        partitioner=doc.get("partitioner", "murmur2"),
        customers=int(doc["customers"]),
        app_id=doc.get("app_id", ""),
        partition_count=int(doc.get("partition_count", len(doc["partitions"]) or 1)),
    )


def read_rows(directory: Path) -> Iterator[tuple[int, CustomerRecord]]:
    jsonl, parquet = directory / "customers.jsonl", directory / "customers.parquet"
    if jsonl.is_file():
        with jsonl.open("rb") as f:
            for number, line in enumerate(f, 1):
                try:
                    yield row_record(orjson.loads(line))
                except (ValueError, KeyError, TypeError) as exc:
                    raise ExportError(f"{jsonl}:{number}: not a customer row ({exc}); export again") from None
    elif parquet.is_file():
        import duckdb

        con = duckdb.connect()
        cursor = con.cursor()
        cursor.execute(f"SELECT * FROM read_parquet('{parquet}')")
        names = [c[0] for c in cursor.description or []]
        number = 0
        while batch := cursor.fetchmany(10_000):
            for values in batch:
                number += 1
                row = dict(zip(names, values, strict=True))
                for key in NESTED:
                    if key in row:  # an export written before segments has no such column
                        row[key] = json.loads(row[key])
                try:
                    yield row_record(row)
                except (ValueError, KeyError, TypeError) as exc:
                    raise ExportError(
                        f"{parquet}, row {number}: not a customer row ({exc}); export again"
                    ) from None
        con.close()
    else:
        raise ExportError(
            f"{directory}: no customers.jsonl or customers.parquet beside manifest.json; export again"
        )


def check_covers(manifest: Manifest, rules: Rules, series_days: dict[str, int], where: Path) -> None:
    """Refuse rules whose windows or lateness the stored history does not cover."""
    problems = []
    if rules.timezone != manifest.timezone:
        problems.append(
            f"the timezone changes ({manifest.timezone} -> {rules.timezone}): business days would shift"
        )
    if rules.max_lateness_days > manifest.lateness_days:
        problems.append(
            f"max_lateness_days {rules.max_lateness_days} > the {manifest.lateness_days} days of "
            "observations and event ids the state keeps"
        )
    for name, days in series_days.items():
        kept = manifest.series.get(name)
        if kept is None:
            problems.append(f"the rules read {name} by day, which the state does not keep")
        elif kept < days:
            problems.append(f"the rules need {days} days of {name}; the state keeps {kept}")
    if problems:
        raise ExportError(
            f"{where}: {'; '.join(problems)}. Bootstrap these rules from a warehouse snapshot with "
            "that history instead (docs/going-live.md)"
        )


def atomic_dir(out: Path) -> Path:
    """A fresh work directory beside `out`, to be renamed onto it when complete."""
    out = out.resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(
            f"{out}: exists and is not an empty directory; give a new --out (nothing is overwritten)"
        )
    if not out.parent.is_dir():
        raise ExportError(f"{out.parent}: no such directory; create it first")
    work = out.parent / f".{out.name}.partial-{os.getpid()}"
    work.mkdir()
    return work


def finish_dir(work: Path, out: Path) -> None:
    if out.exists():
        out.rmdir()
    work.rename(out)
