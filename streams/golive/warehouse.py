"""Read a warehouse snapshot (SPEC §9) with DuckDB into rules-free customer records.

Every file is checked before anything is built: its columns, then each column's
values row by row (the first bad row is named: file, line or row, column, the fix),
then the relations between files (ids known, one row per key, nothing dated after
the as-of day). Then the files are read once, ordered by customer, and merged into
one `CustomerRecord` per customer: closing balances become the per-day AUM and loan
series (carried forward), activity rows the per-day sums, and the observations inside
the lateness horizon stand as the accounts' latest observations.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from ..engine.decode import ASSET_PRODUCTS, LIABILITY_PRODUCTS
from ..engine.evaluate import UNSET_QUIETLY, series_specs
from ..engine.portable import SNAPSHOT_EVENT_ID, CustomerRecord
from ..engine.rules import Rules
from ..engine.timeutil import Calendar, parse_instant

FILES = ("balances", "activity", "customers", "attributes", "cooldowns")
OPTIONAL_FILES = frozenset({"cooldowns"})
SUFFIXES = (".csv", ".csv.gz", ".parquet")

# column -> (required, kind)
COLUMNS: dict[str, dict[str, tuple[bool, str]]] = {
    "balances": {
        "customer_id": (True, "id"),
        "account_id": (True, "id"),
        "product": (True, "product"),
        "business_date": (True, "date"),
        "balance": (True, "money"),
        "currency": (False, "currency"),
        "observed_at": (False, "instant"),
    },
    "activity": {
        "customer_id": (True, "id"),
        "business_date": (True, "date"),
        "txn_count": (True, "count"),
        "debit": (True, "money+"),
        "credit": (True, "money+"),
        "spend": (True, "money+"),
        "external_outflow": (True, "money+"),
    },
    "customers": {
        "customer_id": (True, "id"),
        "first_seen": (True, "date"),
        "last_activity": (True, "date?"),
        "tier": (False, "tier"),
        "tier_since": (False, "instant"),
        "below_since": (False, "date"),
        "lifecycle": (False, "lifecycle"),
        "rfm": (False, "rfm"),
        "grid": (False, "grid"),
        "churn_risk": (False, "flag"),  # ours, beyond SPEC §9's table: see docs/going-live.md
    },
    "attributes": {
        "customer_id": (True, "id"),
        "name": (True, "id"),
        "value": (True, "text"),
        "type": (True, "attr_type"),
        "ts": (True, "instant"),
    },
    "cooldowns": {
        "customer_id": (True, "id"),
        "kind": (True, "cooldown_kind"),
        "key": (True, "id"),
        "last_day": (True, "date"),
    },
}

_DATE_RE = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
_MONEY_RE = r"-?[0-9]+(\.[0-9]{1,2}0*)?"
_LIFECYCLES = ("new", "active", "dormant", "churn_risk")
_REASONS = ("dormant", "balance_drop", "external_outflow")
_INSTANT_RE = (
    "[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]+)?"
    "(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)
_NUMBER_RE = r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?"


class SnapshotError(ValueError):
    """A snapshot the bootstrap refuses: one line naming the file, row, column and fix."""


@dataclass
class WarehouseSnapshot:
    """An opened, checked snapshot directory; `records()` streams the customers."""

    directory: Path
    rules: Rules
    as_of: int  # business day X
    con: duckdb.DuckDBPyConnection
    paths: dict[str, Path]
    rows: dict[str, int] = field(default_factory=dict)
    columns: dict[str, set[str]] = field(default_factory=dict)
    #: what looks wrong but may be right (one line each); the commands print them
    warnings: list[str] = field(default_factory=list)

    @property
    def customers(self) -> int:
        return self.rows["customers"]

    def records(self) -> Iterator[CustomerRecord]:
        return _records(self)


def _remove_scratch(con: duckdb.DuckDBPyConnection, scratch: str) -> None:
    con.close()
    shutil.rmtree(scratch, ignore_errors=True)


def find_files(directory: Path) -> dict[str, Path]:
    if not directory.is_dir():
        raise SnapshotError(
            f"{directory}: no such snapshot directory; give the folder holding balances.csv …"
        )
    found: dict[str, Path] = {}
    for name in FILES:
        hits = [directory / f"{name}{s}" for s in SUFFIXES if (directory / f"{name}{s}").is_file()]
        if len(hits) > 1:
            raise SnapshotError(f"{directory}: both {hits[0].name} and {hits[1].name}; keep one of them")
        if hits:
            found[name] = hits[0]
        elif name not in OPTIONAL_FILES:
            raise SnapshotError(
                f"{directory}: no {name}.csv (or .csv.gz, .parquet); every snapshot has one, "
                "with its header row even when it has no rows (SPEC §9)"
            )
    return found


def open_snapshot(directory: Path, rules: Rules, as_of: int) -> WarehouseSnapshot:
    """Check every file of the snapshot; raise SnapshotError on the first problem."""
    paths = find_files(directory)
    # A database file of its own (removed when the process ends): DuckDB then keeps the
    # snapshot's rows on disk and memory stays bounded by its buffer pool, not the bank.
    scratch = tempfile.mkdtemp(prefix="tierstream-snapshot-")
    con = duckdb.connect(str(Path(scratch) / "snapshot.duckdb"))
    con.execute("SET memory_limit = '2GB'")
    snap = WarehouseSnapshot(directory, rules, as_of, con, paths)
    weakref.finalize(snap, _remove_scratch, con, scratch)
    for name, path in paths.items():
        _load(snap, name, path)
    _check_relations(snap)
    _check_history(snap)
    return snap


# ----------------------------------------------------------------------------- loading
def _where(path: Path, rn: int) -> str:
    """Where a row is, as a person opens the file: CSV line (header is line 1) or Parquet row."""
    if path.name.endswith(".parquet"):
        return f"{path}, row {rn}"
    return f"{path}:{rn + 1}"


def _load(snap: WarehouseSnapshot, name: str, path: Path) -> None:
    con = snap.con
    if path.name.endswith(".parquet"):
        source = f"read_parquet('{_quote(path)}')"
        try:
            described = con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()
        except duckdb.Error as exc:
            raise SnapshotError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from None
        types = {row[0]: str(row[1]) for row in described}
        for column, kind in types.items():
            if kind in ("FLOAT", "DOUBLE") and COLUMNS[name].get(column, (False, ""))[1].startswith("money"):
                raise SnapshotError(
                    f"{path}: column {column} is a binary float ({kind}); money must be exact: "
                    "write it as a DECIMAL column or as decimal text"
                )
        select = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in types)
        raw = f"SELECT {select}, row_number() OVER () AS rn FROM {source}"
    else:
        header = _csv_header(path)
        types = dict.fromkeys(header, "VARCHAR")
        columns = ", ".join(f"'{c.replace(chr(39), chr(39) * 2)}': 'VARCHAR'" for c in header)
        source = (
            f"read_csv('{_quote(path)}', header=true, auto_detect=false, delim=',', quote='\"', "
            f"escape='\"', columns={{{columns}}})"
        )
        raw = f"SELECT *, row_number() OVER () AS rn FROM {source}"
    spec = COLUMNS[name]
    unknown = [c for c in types if c not in spec]
    if unknown:
        raise SnapshotError(
            f"{path}: unknown column(s) {', '.join(unknown)}; {name} has {', '.join(spec)} "
            "(check the header's spelling)"
        )
    missing = [c for c, (required, _) in spec.items() if required and c not in types]
    if missing:
        raise SnapshotError(
            f"{path}: missing column(s) {', '.join(missing)}; the header must name {', '.join(c for c, (r, _) in spec.items() if r)}"
        )
    try:
        con.sql(f"CREATE TABLE raw_{name} AS {raw}")
    except duckdb.Error as exc:
        raise SnapshotError(f"{path}: cannot be read ({_first_line(exc)}); fix the file's format") from None
    snap.columns[name] = set(types)
    snap.rows[name] = con.sql(f"SELECT count(*) FROM raw_{name}").fetchall()[0][0]
    # one scan per file: the first bad row of every column
    checks = {column: _column_check(snap, column, spec[column]) for column in types}
    firsts = ", ".join(f"min(rn) FILTER (WHERE {bad})" for bad, _ in checks.values())
    found = con.sql(f"SELECT {firsts} FROM raw_{name}").fetchall()[0]
    bad_rows = [(rn, column) for rn, column in zip(found, checks, strict=True) if rn is not None]
    if bad_rows:
        rn, column = min(bad_rows)
        value = con.sql(f'SELECT "{column}" FROM raw_{name} WHERE rn = {rn}').fetchall()[0][0]
        shown = "empty" if value in (None, "") else repr(value)
        raise SnapshotError(f"{_where(path, rn)}: column {column} is {shown}; write {checks[column][1]}")


def _column_check(snap: WarehouseSnapshot, column: str, spec: tuple[bool, str]) -> tuple[str, str]:
    """(SQL that holds for a bad value of the column, what a good value looks like)."""
    required, kind = spec
    col = f'"{column}"'
    tiers = ", ".join(f"'{t}'" for t in snap.rules.tier_ids)
    # (predicate that holds for a good non-empty value, what a good value looks like)
    checks: dict[str, tuple[str, str]] = {
        "id": ("length(trim(@v)) > 0", "a non-empty id"),
        "text": ("true", "text"),
        "product": (
            f"@v IN ({', '.join(repr(p) for p in sorted(ASSET_PRODUCTS | LIABILITY_PRODUCTS))})",
            "one of " + ", ".join(sorted(ASSET_PRODUCTS | LIABILITY_PRODUCTS)),
        ),
        "date": (
            f"regexp_full_match(@v, '{_DATE_RE}') AND try_cast(@v AS DATE) IS NOT NULL",
            "a date like 2026-03-31",
        ),
        "date?": (
            f"regexp_full_match(@v, '{_DATE_RE}') AND try_cast(@v AS DATE) IS NOT NULL",
            "a date like 2026-03-31, or empty",
        ),
        "money": (f"regexp_full_match(@v, '{_MONEY_RE}')", "decimal text in whole fen, like 1234.56"),
        "money+": (
            f"regexp_full_match(@v, '{_MONEY_RE}') AND NOT starts_with(@v, '-')",
            "a non-negative amount in whole fen, like 1234.56",
        ),
        "count": ("regexp_full_match(@v, '[0-9]+')", "a whole number ≥ 0"),
        "currency": (
            f"@v IN ('CNY', {', '.join(repr(c) for c in snap.rules.currencies) or 'NULL'})",
            "CNY"
            + "".join(f" or {c}" for c in snap.rules.currencies)
            + " (other currencies need a rate in the rules file)",
        ),
        "instant": (
            f"regexp_full_match(@v, '{_INSTANT_RE}') AND try_cast(substr(@v, 1, 10) AS DATE) IS NOT NULL",
            "an RFC 3339 instant with seconds and a UTC offset, like 2026-03-31T18:00:00+08:00",
        ),
        "tier": (f"@v IN ({tiers})", f"a tier id of {snap.rules.source}: {', '.join(snap.rules.tier_ids)}"),
        "lifecycle": (
            f"@v IN ({', '.join(repr(x) for x in _LIFECYCLES)})",
            "one of " + ", ".join(_LIFECYCLES),
        ),
        "flag": ("@v IN ('true', 'false')", "true or false"),
        "rfm": _segment_check(snap.rules, "rfm"),
        "grid": _segment_check(snap.rules, "grid"),
        "attr_type": ("@v IN ('number', 'bool', 'string')", "number, bool or string"),
        "cooldown_kind": ("@v IN ('opportunity', 'warning')", "opportunity or warning"),
    }
    predicate, expected = checks[kind]
    empty_ok = not required or kind == "date?"
    blank = f"({col} IS NULL OR {col} = '')"
    good = predicate.replace("@v", col)
    return f"(({blank} AND NOT {str(empty_ok).lower()}) OR (NOT {blank} AND NOT ({good})))", expected


def _segment_check(rules: Rules, segment: str) -> tuple[str, str]:
    """A value the rules' segment can take (any text when they do not publish it: unused)."""
    segments = rules.segments
    if segment == "rfm" and segments is not None and segments.rfm is not None:
        parts = [
            f"{letter}({'|'.join(str(s) for s in range(1, len(d.bands) + 2))})"
            for letter, d in zip("RFM", segments.rfm, strict=True)
        ]
        example = "".join(
            f"{letter}{len(d.bands) + 1}" for letter, d in zip("RFM", segments.rfm, strict=True)
        )
        return (
            f"regexp_full_match(@v, '{''.join(parts)}')",
            f"an rfm value of {rules.source} such as {example}",
        )
    if segment == "grid" and segments is not None and segments.grid is not None:
        value, activity = segments.grid
        cells = [f"{v}/{a}" for v in value.names for a in activity.names]
        quoted = ", ".join("'" + cell.replace("'", "''") + "'" for cell in cells)
        return f"@v IN ({quoted})", f"a grid cell of {rules.source} such as {cells[-1]}"
    return "true", "text"


def _csv_header(path: Path) -> list[str]:
    """The header row, read as a person wrote it (DuckDB's sniffer may take a header
    whose width differs from the rows for data)."""
    import csv
    import gzip

    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as f:
            row = next(csv.reader(f), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SnapshotError(f"{path}: not a readable UTF-8 CSV file ({exc}); export it again") from None
    if not row:
        raise SnapshotError(f"{path}: empty; write the header row even when there are no rows")
    return [c.strip() for c in row]


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


def _opt(snap: WarehouseSnapshot, name: str, column: str) -> str:
    """The column if the file has it, else NULL (an optional column may be absent)."""
    return f"NULLIF(\"{column}\", '')" if column in snap.columns.get(name, ()) else "NULL"


def _check_relations(snap: WarehouseSnapshot) -> None:
    con, paths, x = snap.con, snap.paths, Calendar.day_text(snap.as_of)

    def first(sql: str) -> tuple[Any, ...] | None:
        rows = con.sql(sql).fetchall()
        return rows[0] if rows else None

    row = first(
        "SELECT a.rn, a.customer_id FROM raw_customers a JOIN raw_customers b "
        "ON a.customer_id = b.customer_id AND b.rn < a.rn ORDER BY a.rn LIMIT 1"
    )
    if row:
        raise SnapshotError(
            f"{_where(paths['customers'], row[0])}: customer {row[1]!r} has a second row; keep one row per customer"
        )
    dated = {
        "balances": ["business_date"],
        "activity": ["business_date"],
        "customers": ["first_seen", "last_activity", "below_since"],
        "cooldowns": ["last_day"],
    }
    for name, columns in dated.items():
        for column in columns:
            if name not in paths or column not in snap.columns[name]:
                continue
            row = first(
                f'SELECT rn, "{column}" FROM raw_{name} WHERE NULLIF("{column}", \'\') IS NOT NULL '
                f"AND CAST(\"{column}\" AS DATE) > DATE '{x}' ORDER BY rn LIMIT 1"
            )
            if row:
                raise SnapshotError(
                    f"{_where(paths[name], row[0])}: {column} {row[1]} is after the as-of day {x}; "
                    "a snapshot holds the bank as of the end of that day: export again, or give a later --as-of"
                )
    for name in ("balances", "activity", "attributes", "cooldowns"):
        if name not in paths:
            continue
        row = first(
            f"SELECT rn, customer_id FROM raw_{name} WHERE customer_id NOT IN "
            f"(SELECT customer_id FROM raw_customers) ORDER BY rn LIMIT 1"
        )
        if row:
            raise SnapshotError(
                f"{_where(paths[name], row[0])}: customer {row[1]!r} is not in {paths['customers'].name}; "
                "every customer needs a row there (first_seen, last_activity)"
            )
    keys = {
        "balances": ("customer_id, account_id, business_date", "account and business_date"),
        "activity": ("customer_id, business_date", "customer and business_date"),
        "attributes": ("customer_id, name", "customer and attribute name"),
        "cooldowns": ("customer_id, kind, key", "customer, kind and key"),
    }
    for name, (cols, what) in keys.items():
        if name not in paths:
            continue
        row = first(
            f"SELECT rn FROM (SELECT rn, row_number() OVER (PARTITION BY {cols} ORDER BY rn) AS k "
            f"FROM raw_{name}) WHERE k > 1 ORDER BY rn LIMIT 1"
        )
        if row:
            raise SnapshotError(f"{_where(paths[name], row[0])}: a second row for the same {what}; keep one")
    row = first(
        "SELECT rn, product, balance FROM raw_balances WHERE product IN ('loan', 'credit_card') "
        "AND starts_with(balance, '-') AND CAST(balance AS DECIMAL(38, 2)) <> 0 ORDER BY rn LIMIT 1"
    )
    if row:
        raise SnapshotError(
            f"{_where(paths['balances'], row[0])}: a {row[1]} balance of {row[2]}; a liability's balance is "
            "the amount owed, ≥ 0 (SPEC §2)"
        )
    if "observed_at" in snap.columns["balances"]:
        cal = Calendar(snap.rules.timezone)
        cursor = _query(
            con,
            "SELECT rn, business_date, observed_at FROM raw_balances WHERE NULLIF(observed_at, '') IS NOT NULL",
        )
        while batch := cursor.fetchmany(50_000):
            for rn, day, observed in batch:
                if cal.day_text(cal.day_of(parse_instant(observed))) != day:
                    raise SnapshotError(
                        f"{_where(paths['balances'], rn)}: observed_at {observed} is not on business_date {day} "
                        f"in {snap.rules.timezone}; give the instant of the observation that set that day's balance"
                    )
    row = (
        first(
            "SELECT rn, key FROM raw_cooldowns WHERE kind = 'warning' AND key NOT IN "
            f"({', '.join(repr(r) for r in _REASONS)}) ORDER BY rn LIMIT 1"
        )
        if "cooldowns" in paths
        else None
    )
    if row:
        raise SnapshotError(
            f"{_where(paths['cooldowns'], row[0])}: warning key {row[1]!r}; write one of {', '.join(_REASONS)}"
        )
    row = (
        first(
            "SELECT rn, key FROM raw_cooldowns WHERE kind = 'opportunity' AND key NOT IN "
            f"({', '.join(repr(t) for t in snap.rules.tier_ids)}) ORDER BY rn LIMIT 1"
        )
        if "cooldowns" in paths
        else None
    )
    if row:
        raise SnapshotError(
            f"{_where(paths['cooldowns'], row[0])}: opportunity key {row[1]!r} is not a tier of "
            f"{snap.rules.source}; write the target tier's id ({', '.join(snap.rules.tier_ids[1:])})"
        )
    cursor = _query(con, "SELECT rn, type, value FROM raw_attributes ORDER BY rn")
    while batch := cursor.fetchmany(50_000):
        for rn, kind, value in batch:
            try:
                attribute_value(kind, value)
            except ValueError as exc:
                raise SnapshotError(f"{_where(paths['attributes'], rn)}: column value: {exc}") from None


def history_days(rules: Rules) -> int:
    """Days of history a snapshot must reach back for these rules: the longest ring."""
    return max(s.size for s in series_specs(rules))


def _check_history(snap: WarehouseSnapshot) -> None:
    """Warn when a window reaches back before every row of the snapshot while a customer
    was seen that early: the export may have been cut short (the days before its first
    row would count as 0), or nothing happened that early (a customer first seen through
    a profile, a young bank); the files cannot tell which, so it is a warning."""
    specs = series_specs(snap.rules)
    longest = max((w for s in specs for w in s.windows), default=1)
    need_from = snap.as_of - longest + 1
    row = snap.con.sql(
        "SELECT min(d) FROM (SELECT min(CAST(business_date AS DATE)) AS d FROM raw_balances "
        "UNION ALL SELECT min(CAST(business_date AS DATE)) FROM raw_activity)"
    ).fetchall()[0][0]
    start = Calendar.day_from_text(str(row)) if row is not None else snap.as_of + 1
    if start <= need_from:
        return
    early = snap.con.sql(
        f"SELECT rn, customer_id, first_seen FROM raw_customers WHERE CAST(first_seen AS DATE) < "
        f"DATE '{Calendar.day_text(need_from)}' ORDER BY rn LIMIT 1"
    ).fetchall()
    if early:
        rn, cid, seen = early[0]
        snap.warnings.append(
            f"{snap.directory}: warning: the rules read {longest}-day windows, so history should start by "
            f"{Calendar.day_text(need_from)}, but balances and activity start on {Calendar.day_text(start)} "
            f"while customer {cid!r} was first seen {seen} ({_where(snap.paths['customers'], rn)}); "
            f"the days before count as 0. If the export was cut short, export {longest} days of history "
            "plus the last balance before them"
        )


def attribute_value(kind: str, text: str | None) -> Any:
    """An attribute's value from its text and type, as the engine holds a decoded one."""
    if text is None:
        text = ""
    if kind == "string":
        return text
    if kind == "bool":
        if text in ("true", "false"):
            return text == "true"
        raise ValueError(f"{text!r} is not a bool; write true or false")
    if not re.fullmatch(_NUMBER_RE, text):
        raise ValueError(f"{text!r} is not a number; write decimal text like 200000 or 12.5")
    if re.fullmatch("-?[0-9]+", text):
        return int(text)
    return Decimal(text)


# ----------------------------------------------------------------------------- records
def _records(snap: WarehouseSnapshot) -> Iterator[CustomerRecord]:
    rules, con, x = snap.rules, snap.con, snap.as_of
    cal = Calendar(rules.timezone)
    specs = series_specs(rules)
    sizes = {s.name: s.size for s in specs}
    # the accounts' observations a late record after the cut-over can meet
    horizon = x - rules.max_lateness_days + 1
    con.execute(
        "CREATE OR REPLACE TABLE cust AS SELECT customer_id, "
        "CAST(row_number() OVER (ORDER BY customer_id) - 1 AS BIGINT) AS idx FROM raw_customers"
    )
    cases = " ".join(
        f"WHEN '{code}' THEN (f * {num} - (((f * {num}) % {den}) + {den}) % {den}) // {den}"
        for code, (num, den) in rules.currencies.items()
    )
    con.execute(
        f"""
        CREATE OR REPLACE TABLE bal AS
        WITH b AS (
          SELECT customer_id, account_id, product, CAST(business_date AS DATE) AS d,
                 CAST(CAST(balance AS DECIMAL(38, 2)) * 100 AS HUGEINT) AS f,
                 coalesce({_opt(snap, "balances", "currency")}, 'CNY') AS currency,
                 {_opt(snap, "balances", "observed_at")} AS observed_at
          FROM raw_balances
        )
        SELECT c.idx, b.customer_id, account_id, product, product IN ('loan', 'credit_card') AS liability,
               CAST(d - DATE '1970-01-01' AS INTEGER) AS day,
               CAST(lead(d) OVER (PARTITION BY b.customer_id, account_id ORDER BY d) - DATE '1970-01-01'
                    AS INTEGER) AS next_day,
               CAST({f"CASE currency {cases} ELSE f END" if cases else "f"} AS BIGINT) AS fen, observed_at
        FROM b JOIN cust c USING (customer_id)
        """
    )
    observations = _query(
        con,
        f"""
        SELECT customer_id, account_id, product, day, fen, observed_at FROM (
          SELECT *, max(day) FILTER (WHERE day <= {horizon})
                    OVER (PARTITION BY customer_id, account_id) AS carry_in
          FROM bal
        ) WHERE day >= {horizon} OR day = carry_in
        ORDER BY customer_id, account_id, day
        """,
    )
    attributes = _query(
        con, "SELECT customer_id, name, value, type, ts FROM raw_attributes ORDER BY customer_id, name"
    )
    cooldowns = (
        _query(
            con,
            "SELECT customer_id, kind, key, CAST(CAST(last_day AS DATE) - DATE '1970-01-01' AS INTEGER) "
            "FROM raw_cooldowns ORDER BY customer_id",
        )
        if "cooldowns" in snap.paths
        else None
    )
    customers = _query(
        con,
        f"""
        SELECT customer_id, CAST(CAST(first_seen AS DATE) - DATE '1970-01-01' AS INTEGER),
               CAST(CAST(NULLIF(last_activity, '') AS DATE) - DATE '1970-01-01' AS INTEGER),
               {_opt(snap, "customers", "tier")}, {_opt(snap, "customers", "tier_since")},
               CAST(CAST({_opt(snap, "customers", "below_since")} AS DATE) - DATE '1970-01-01' AS INTEGER),
               {_opt(snap, "customers", "lifecycle")}, {_opt(snap, "customers", "rfm")},
               {_opt(snap, "customers", "grid")}, {_opt(snap, "customers", "churn_risk")}
        FROM raw_customers ORDER BY customer_id
        """,
    )
    streams = {
        "balances": _grouped(observations),
        "attributes": _grouped(attributes),
        "cooldowns": _grouped(cooldowns) if cooldowns is not None else iter(()),
    }
    heads: dict[str, tuple[str, list[tuple[Any, ...]]] | None] = {
        k: next(s, None) for k, s in streams.items()
    }

    def take(name: str, cid: str) -> list[tuple[Any, ...]]:
        head = heads[name]
        if head is None or head[0] != cid:
            return []
        heads[name] = next(streams[name], None)
        return head[1]

    end_of_day = cal.boundary(x + 1) - 1
    published = rules.published_segments()
    lo = 0
    for batch in iter(lambda: customers.fetchmany(CHUNK), []):
        daily = _daily(snap, sizes, lo, lo + len(batch))
        for i, row in enumerate(batch):
            cid, first_seen, last_activity, tier, tier_since, below_since, lifecycle, rfm, grid, risk = row
            rec = CustomerRecord(
                customer_id=cid,
                first_day=first_seen,
                day=x,
                last_instant=end_of_day,
                tier=tier,  # None: the qualified tier (PartitionEngine.seed)
                tier_since=parse_instant(tier_since) if tier_since else end_of_day,
                below_since=below_since if tier else None,
                last_txn_day=last_activity,
            )
            inactive = x - (last_activity if last_activity is not None else first_seen)
            rec.dormant_fired = inactive >= rules.dormant_after_days
            rec.series = {name: values[i].tolist() for name, values in daily.items()}
            _observations(rec, take("balances", cid), cal)
            for _, name, value, kind, ts in take("attributes", cid):
                rec.attrs[name] = (parse_instant(ts), SNAPSHOT_EVENT_ID, attribute_value(kind, value))
            for _, kind, key, day in take("cooldowns", cid):
                if kind == "opportunity":
                    rec.opportunities[key] = day
                elif key != "dormant":  # dormant fires once per spell, not by cooldown
                    rec.warnings[key] = day
            if risk is not None:
                rec.churn_risk = risk == "true"
            elif lifecycle is not None and "lifecycle" not in published:  # the stage at the end of X
                rec.churn_risk = lifecycle == "churn_risk"
            else:  # a balance-drop or outflow warning since the last activity
                since = last_activity if last_activity is not None else first_seen - 1
                rec.churn_risk = any(day > since for day in rec.warnings.values())
            if first_seen < x:  # had a boundary: a segment not given is set quietly (SPEC §9)
                given = {"lifecycle": lifecycle, "rfm": rfm, "grid": grid}
                rec.segments = {name: value or UNSET_QUIETLY for name, value in given.items()}
            else:  # first seen on X: its first boundary (X+1) sets each segment from none
                rec.segments = {
                    n: v for n, v in (("lifecycle", lifecycle), ("rfm", rfm), ("grid", grid)) if v
                }
            yield rec
        lo += len(batch)


#: customers whose day series are built at once (dense arrays of CHUNK x ring days)
CHUNK = 10_000


def _daily(snap: WarehouseSnapshot, sizes: dict[str, int], lo: int, hi: int) -> dict[str, Any]:
    """Per-day series of customers lo..hi-1 (by id order) as int64 arrays (customers x days,
    oldest first, ending on X): balances carried forward from each row to the account's
    next row, as +fen/-fen steps summed along the days; activity placed on its day."""
    import numpy as np

    x, con, n = snap.as_of, snap.con, hi - lo
    out = {name: np.zeros((n, size), dtype=np.int64) for name, size in sizes.items()}
    for name, liability in (("aum", False), ("loan", True)):
        if name not in sizes:
            continue
        first = x - sizes[name] + 1
        steps = con.execute(
            f"""
            WITH r AS (
              SELECT idx, fen, greatest(day, {first}) AS start, coalesce(next_day - 1, {x}) AS stop
              FROM bal WHERE idx >= {lo} AND idx < {hi} AND liability = {str(liability).lower()} AND fen <> 0
            )
            SELECT idx - {lo} AS row, start - {first} AS col, fen FROM r WHERE stop >= {first}
            UNION ALL
            SELECT idx - {lo}, stop + 1 - {first}, -fen FROM r WHERE stop >= {first} AND stop < {x}
            """
        ).fetchnumpy()
        delta = out[name]
        np.add.at(
            delta,
            (steps["row"].astype(np.int64), steps["col"].astype(np.int64)),
            steps["fen"].astype(np.int64),
        )
        np.cumsum(delta, axis=1, out=delta)
    columns = [c for c in ("txn_count", "debit", "credit", "spend", "external_outflow") if c in sizes]
    if columns:
        longest = max(sizes[c] for c in columns)
        money: dict[str, str] = {
            c: f"CAST(CAST({c} AS DECIMAL(38, 2)) * 100 AS BIGINT) AS {c}"
            for c in columns
            if c != "txn_count"
        }
        select = ", ".join(money.get(c, "CAST(txn_count AS BIGINT) AS txn_count") for c in columns)
        rows = con.execute(
            f"""
            SELECT c.idx - {lo} AS row, CAST(CAST(a.business_date AS DATE) - DATE '1970-01-01' AS INTEGER) AS day,
                   {select}
            FROM raw_activity a JOIN cust c USING (customer_id)
            WHERE c.idx >= {lo} AND c.idx < {hi} AND CAST(a.business_date AS DATE) > DATE '{Calendar.day_text(x)}' - {longest}
            """
        ).fetchnumpy()
        row, day = rows["row"].astype(np.int64), rows["day"].astype(np.int64)
        for c in columns:
            col = day - (x - sizes[c] + 1)
            keep = col >= 0
            out[c][row[keep], col[keep]] = rows[c].astype(np.int64)[keep]
    return out


def _observations(rec: CustomerRecord, rows: list[tuple[Any, ...]], cal: Calendar) -> None:
    """The accounts' closing balances inside the lateness horizon (and the last before it),
    standing as their latest observations (at `observed_at`, else the end of the day)."""
    for _, account, product, day, fen, observed_at in rows:
        ts = parse_instant(observed_at) if observed_at else cal.boundary(day + 1) - 1
        rec.accounts.setdefault(account, []).append(
            [day, ts, SNAPSHOT_EVENT_ID, int(fen), product in LIABILITY_PRODUCTS]
        )


def _query(con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyConnection:
    """A query on a cursor of its own: several results are read side by side."""
    cursor = con.cursor()
    cursor.execute(sql)
    return cursor


def _grouped(relation: Any) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    """Rows ordered by customer id (first column), grouped per customer."""
    current: str | None = None
    group: list[tuple[Any, ...]] = []
    while batch := relation.fetchmany(50_000):
        for row in batch:
            if row[0] != current:
                if current is not None:
                    yield current, group
                current, group = row[0], []
            group.append(row)
    if current is not None:
        yield current, group
