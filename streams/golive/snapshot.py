"""`tierstream snapshot`: the warehouse snapshot (SPEC §9) of an event file up to a cut.

Two routes meet here. The engine reads the file up to the cut and decides which
records count (applied, not duplicates, not dead letters, not too late); every applied
record is kept as a row. DuckDB SQL then computes the warehouse files from those rows
— closing balances, daily activity, first sight and last activity, current attributes
— exactly as a bank's warehouse would from its own tables (docs/going-live.md shows
the same queries on warehouse tables). The figures only the evaluation history knows
(the tier held and since when, a running grace period, cooldowns, lifecycle) are
read from the engine's state. Tests bootstrap from these files and check that the
state equals the engine's, field by field.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import duckdb

from ..engine import decode as d
from ..engine.jsonio import NotJson, loads
from ..engine.partition import PartitionEngine
from ..engine.rules import SEGMENT_NAMES, Rules
from ..engine.timeutil import Calendar, TimestampError, parse_instant
from ..tools.simulate import feed_line
from .warehouse import history_days

#: The warehouse queries, over the tables a bank's warehouse holds (here: the records
#: the engine applied, in file order `seq`). {keep_from} and {as_of} are dates.
BALANCES_SQL = """
-- the closing balance of each account on each day it was observed: its latest
-- observation of that day by (ts, event_id); rows inside the history the rules read,
-- plus each account's last row before it (its balance carries forward)
WITH closing AS (
  SELECT customer_id, account_id,
         arg_max(product, (ts, event_id)) AS product,
         business_date,
         arg_max(balance_fen, (ts, event_id)) AS balance_fen,
         arg_max(ts_text, (ts, event_id)) AS observed_at
  FROM balance_observations
  WHERE business_date <= DATE '{as_of}'
  GROUP BY customer_id, account_id, business_date
), carry AS (
  SELECT *, max(business_date) FILTER (WHERE business_date <= DATE '{keep_from}')
            OVER (PARTITION BY customer_id, account_id) AS carry_in
  FROM closing
)
SELECT customer_id, account_id, product, business_date, balance_fen, observed_at
FROM carry
WHERE business_date > DATE '{keep_from}' OR business_date = carry_in
ORDER BY customer_id, account_id, business_date
"""

ACTIVITY_SQL = """
-- each customer's daily sums (SPEC §3): customer-initiated transactions are every
-- channel but 'system'; spend is POS debits; external outflow is debits to another bank
SELECT customer_id, business_date,
       count(*) FILTER (WHERE channel <> 'system') AS txn_count,
       coalesce(sum(amount_fen) FILTER (WHERE channel <> 'system' AND direction = 'debit'), 0) AS debit_fen,
       coalesce(sum(amount_fen) FILTER (WHERE channel <> 'system' AND direction = 'credit'), 0) AS credit_fen,
       coalesce(sum(amount_fen) FILTER (WHERE channel = 'pos' AND direction = 'debit'), 0) AS spend_fen,
       coalesce(sum(amount_fen) FILTER (WHERE direction = 'debit' AND external), 0) AS external_outflow_fen
FROM transactions
WHERE business_date > DATE '{keep_from}' AND business_date <= DATE '{as_of}'
GROUP BY customer_id, business_date
HAVING txn_count > 0 OR spend_fen > 0 OR external_outflow_fen > 0
ORDER BY customer_id, business_date
"""

CUSTOMERS_SQL = """
-- first sight: the business day of the customer's first record (in arrival order);
-- last activity: the latest day of a customer-initiated transaction (empty: none)
WITH events AS (
  SELECT customer_id, seq, business_date FROM balance_observations
  UNION ALL SELECT customer_id, seq, business_date FROM transactions
  UNION ALL SELECT customer_id, seq, business_date FROM profile_attributes
), seen AS (
  SELECT customer_id, arg_min(business_date, seq) AS first_seen FROM events GROUP BY customer_id
), active AS (
  SELECT customer_id, max(business_date) AS last_activity
  FROM transactions WHERE channel <> 'system' GROUP BY customer_id
)
SELECT customer_id, first_seen, last_activity
FROM seen LEFT JOIN active USING (customer_id)
ORDER BY customer_id
"""

ATTRIBUTES_SQL = """
-- each attribute's value from its latest event by (ts, event_id)
SELECT customer_id, name,
       arg_max(value, (ts, event_id)) AS value,
       arg_max(type, (ts, event_id)) AS type,
       arg_max(ts_text, (ts, event_id)) AS ts
FROM profile_attributes
GROUP BY customer_id, name
ORDER BY customer_id, name
"""

_TYPES = {
    "business_date": "DATE",
    "ts": "BIGINT",
    "balance_fen": "BIGINT",
    "amount_fen": "BIGINT",
    "seq": "BIGINT",
    "external": "BOOLEAN",
}
_MONEY = "CASE WHEN {c} < 0 THEN '-' ELSE '' END || (abs({c}) // 100)::VARCHAR || '.' || lpad((abs({c}) % 100)::VARCHAR, 2, '0')"


@dataclass
class SnapshotSummary:
    as_of: str
    cut_line: int | None  # 0-based line of the first record after the cut (None: the whole file)
    records_read: int
    customers: int
    rows: dict[str, int]


def record_instant(line: bytes) -> int | None:
    """The `ts` of an event-file line's record, if it has a readable one."""
    try:
        doc = loads(line.decode("utf-8"))
        value = doc.get("value") if isinstance(doc, dict) else None
        if isinstance(value, str):
            value = loads(value)
        ts = value.get("ts") if isinstance(value, dict) else None
        return parse_instant(ts) if isinstance(ts, str) else None
    except (UnicodeDecodeError, NotJson, TimestampError, AttributeError):
        return None


class _Rows:
    """The applied records, as CSV tables DuckDB reads back."""

    def __init__(self, directory: Path, calendar: Calendar, home_bank: str | None) -> None:
        self.calendar = calendar
        self.home_bank = home_bank
        self.files: dict[str, IO[str]] = {}
        self.writers: dict[str, Any] = {}
        self.paths: dict[str, Path] = {}
        heads = {
            "balance_observations": [
                "customer_id", "account_id", "product", "business_date", "ts", "ts_text",
                "event_id", "balance_fen", "seq",
            ],
            "transactions": [
                "customer_id", "business_date", "amount_fen", "direction", "channel", "external", "seq",
            ],
            "profile_attributes": [
                "customer_id", "business_date", "ts", "ts_text", "event_id", "name", "value", "type", "seq",
            ],
        }  # fmt: skip
        self.heads = heads
        for name, head in heads.items():
            path = directory / f"{name}.csv"
            f = path.open("w", encoding="utf-8", newline="")
            self.files[name], self.paths[name] = f, path
            self.writers[name] = csv.writer(f)
            self.writers[name].writerow(head)
        self.seq = 0

    def applied(self, event: d.Event, day: int) -> None:
        seq, cal = self.seq, self.calendar
        date = cal.day_text(day)
        if isinstance(event, d.Balance):
            self.writers["balance_observations"].writerow(
                [event.customer_id, event.account_id, event.product, date, event.ts,
                 cal.isoformat(event.ts), event.event_id, event.fen, seq]
            )  # fmt: skip
        elif isinstance(event, d.Transaction):
            external = event.counterparty_bank is not None and event.counterparty_bank != self.home_bank
            self.writers["transactions"].writerow(
                [event.customer_id, date, event.fen, "debit" if event.debit else "credit",
                 event.channel, "true" if external else "false", seq]
            )  # fmt: skip
            if event.balance_after is not None:
                self.writers["balance_observations"].writerow(
                    [event.customer_id, event.account_id, event.product or "deposit", date, event.ts,
                     cal.isoformat(event.ts), event.event_id, event.balance_after, seq]
                )  # fmt: skip
        else:
            for name, value in event.attributes.items():
                kind, text = _attribute_text(value)
                self.writers["profile_attributes"].writerow(
                    [event.customer_id, date, event.ts, cal.isoformat(event.ts), event.event_id,
                     name, text, kind, seq]
                )  # fmt: skip

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def _attribute_text(value: Any) -> tuple[str, str]:
    if isinstance(value, bool):
        return "bool", "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return "number", str(value)
    return "string", str(value)


def write_snapshot(
    rules: Rules,
    lines: Iterable[tuple[int, bytes]],
    until: int,
    out: Path,
    *,
    fmt: str = "csv",
    minimal: bool = False,
    tail: IO[bytes] | None = None,
) -> SnapshotSummary:
    """The snapshot as of the business day of `until`, of the records before the first
    record dated after it. `minimal` leaves out every optional column and file; `tail`
    receives the lines from the cut on (the records a worker applies after go-live)."""
    engine = PartitionEngine(rules)
    cal = engine.calendar
    as_of = cal.day_of(until)
    end_of_day = cal.boundary(as_of + 1) - 1
    work = Path(tempfile.mkdtemp(prefix=".snapshot-", dir=out.parent))
    try:
        rows = _Rows(work, cal, rules.home_bank)
        engine.on_applied = rows.applied
        cut_line: int | None = None
        read = 0
        for number, line in lines:
            if cut_line is None:
                ts = record_instant(line)
                if ts is not None and ts > end_of_day:
                    cut_line = number
            if cut_line is not None:
                if tail is None:
                    break
                tail.write(line + b"\n")
                continue
            read += 1
            rows.seq = number
            feed_line(engine, number, line)
        engine.advance_clock(end_of_day)  # every customer as of day X (its outputs are before the cut-over)
        rows.close()
        files = work / "files"
        files.mkdir()
        counts = _write_files(engine, rules, rows, as_of, files, fmt, minimal)
        if out.exists():
            out.rmdir()  # checked empty by the caller; a race leaves the user's folder alone
        files.rename(out)
        return SnapshotSummary(cal.day_text(as_of), cut_line, read, len(engine.customers), counts)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _write_files(
    engine: PartitionEngine, rules: Rules, rows: _Rows, as_of: int, out: Path, fmt: str, minimal: bool
) -> dict[str, int]:
    con = duckdb.connect()
    for name, path in rows.paths.items():
        columns = ", ".join(f"'{c}': '{_TYPES.get(c, 'VARCHAR')}'" for c in rows.heads[name])
        con.execute(
            f"CREATE TABLE {name} AS SELECT * FROM read_csv('{path}', header=true, columns={{{columns}}})"
        )
    # the history the rules read plus lateness: the days a snapshot must reach back
    keep_from = Calendar.day_text(as_of - history_days(rules) - rules.max_lateness_days)
    x = Calendar.day_text(as_of)
    params = {"keep_from": keep_from, "as_of": x}
    observed = "" if minimal else ", observed_at"
    queries = {
        "balances": f"SELECT customer_id, account_id, product, business_date, {_MONEY.format(c='balance_fen')} AS balance{observed} FROM ({BALANCES_SQL.format(**params)})",
        "activity": "SELECT customer_id, business_date, txn_count, "
        + ", ".join(
            f"{_MONEY.format(c=c + '_fen')} AS {c}" for c in ("debit", "credit", "spend", "external_outflow")
        )
        + f" FROM ({ACTIVITY_SQL.format(**params)})",
        "attributes": f"SELECT * FROM ({ATTRIBUTES_SQL})",
    }
    engine_columns = _engine_tables(engine, rules, out, minimal)
    con.execute(
        "CREATE TABLE engine_customers AS SELECT * FROM read_csv(?, header=true, all_varchar=true)",
        [str(engine_columns)],
    )
    extra = (
        "" if minimal else ", e.tier, e.tier_since, e.below_since, e.lifecycle, e.rfm, e.grid, e.churn_risk"
    )
    queries["customers"] = (
        f"SELECT c.customer_id, c.first_seen, c.last_activity{extra} FROM ({CUSTOMERS_SQL}) c "
        "JOIN engine_customers e USING (customer_id) ORDER BY c.customer_id"
    )
    counts: dict[str, int] = {}
    for name, sql in queries.items():
        counts[name] = _copy(con, sql, out / name, fmt)
    engine_columns.unlink()
    if not minimal:
        cooldowns = out / "cooldowns.engine.csv"
        con.execute(
            "CREATE TABLE engine_cooldowns AS SELECT * FROM read_csv(?, header=true, all_varchar=true)",
            [str(cooldowns)],
        )
        counts["cooldowns"] = _copy(
            con,
            "SELECT customer_id, kind, key, CAST(last_day AS DATE) AS last_day FROM engine_cooldowns ORDER BY ALL",
            out / "cooldowns",
            fmt,
        )
        cooldowns.unlink()
    con.close()
    return counts


def _copy(con: duckdb.DuckDBPyConnection, sql: str, stem: Path, fmt: str) -> int:
    if fmt == "parquet":
        # money as exact decimals, not text
        con.execute(f"CREATE OR REPLACE TEMP VIEW out_view AS {sql}")
        columns = [r[0] for r in con.execute("DESCRIBE out_view").fetchall()]
        money = {"balance", "debit", "credit", "spend", "external_outflow"}
        select = ", ".join(f"CAST({c} AS DECIMAL(38, 2)) AS {c}" if c in money else c for c in columns)
        con.execute(f"COPY (SELECT {select} FROM out_view) TO '{stem}.parquet' (FORMAT parquet)")
        count = con.execute("SELECT count(*) FROM out_view").fetchall()[0][0]
    else:
        con.execute(f"COPY ({sql}) TO '{stem}.csv' (HEADER, DELIMITER ',')")
        count = con.execute(f"SELECT count(*) FROM ({sql})").fetchall()[0][0]
    return int(count)


def _engine_tables(engine: PartitionEngine, rules: Rules, out: Path, minimal: bool) -> Path:
    """What only the evaluation history knows, from the engine's state at the cut."""
    cal = engine.calendar
    path = out / "customers.engine.csv"
    tiers = rules.tier_ids
    with (
        path.open("w", encoding="utf-8", newline="") as f,
        (out / "cooldowns.engine.csv").open("w", encoding="utf-8", newline="") as g,
    ):
        w, cw = csv.writer(f), csv.writer(g)
        w.writerow(["customer_id", "tier", "tier_since", "below_since", *SEGMENT_NAMES, "churn_risk"])
        cw.writerow(["customer_id", "kind", "key", "last_day"])
        for cid in sorted(engine.customers):
            c = engine.customers[cid]
            below = cal.day_text(c.below_since) if c.below_since is not None else ""
            held = engine.evaluator.serving_segments(c)  # as last published (SPEC §10)
            segments = [held.get(name, "") for name in SEGMENT_NAMES]
            risk = "true" if c.churn_risk else "false"
            w.writerow([cid, tiers[c.tier], cal.isoformat(c.tier_since), below, *segments, risk])
            for t, day in sorted(c.opp_last.items()):
                cw.writerow([cid, "opportunity", tiers[t], cal.day_text(day)])
            for reason, day in sorted(c.churn_last.items()):
                cw.writerow([cid, "warning", reason, cal.day_text(day)])
    if minimal:
        (out / "cooldowns.engine.csv").unlink()
    return path
