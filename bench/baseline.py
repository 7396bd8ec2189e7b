"""The baseline banks run today, side by side with the engine: a nightly batch in DuckDB SQL.

The batch reads the same event file as the engine and computes, for every customer,
the figure the CMB ladder places customers by (`avg_aum_30d`, SPEC §3) and the
qualified tier (SPEC §4) as of the end of the last day in the file. `compare` runs
both on one file in one process and counts how many customers agree; they must all
agree to the fen, or one of the two reads the contract differently.

What the batch refuses like the engine (it drops the record, where the engine
dead-letters it): lines naming no input topic, values that are not a JSON object,
missing or ill-typed fields, unknown products, directions, channels and currencies,
timestamps without seconds or offset, amounts that are not a whole number of fen,
negative liability balances, non-positive transaction amounts, profile attributes
that are lists, objects or null, payloads over `max_record_bytes`, events more than
`max_lateness_days` behind the running clock (`too_late`, from file order), and
redeliveries (the first record in file order per (customer, event_id) is kept).

What it does not handle, and why the bench file has none of it:
- JSON *numbers* with a fraction or exponent (`12.5`, `1e2`): DuckDB parses them as
  binary floats, so the batch drops them rather than guess; strings and JSON integers
  are read exactly. The generator writes every amount as a decimal string.
- `NaN`/`Infinity` (the engine calls them invalid JSON; DuckDB's parser accepts them):
  as an amount the batch drops the record too, as a profile attribute it keeps it,
  which could only move a customer's first-sight day. `future_timestamp` needs a
  wall clock, which neither side has here.
- "printable" ids are checked with RE2's Unicode classes, not Python's `isprintable`;
  the size of an object value is measured on its text as written in the file, not
  re-encoded compactly. The generator writes plain ASCII ids and compact JSON.
The bench file is `generate_events(..., noise=False, late=False)`: no bad records,
no redeliveries, in time order. The tests also run a noisy, late file.

    .venv/bin/python -m bench.baseline [--customers 10000] [--days 90] [--rules cmb]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from tierstream.engine.evaluate import Output
from tierstream.engine.ledger import Customer
from tierstream.engine.partition import PartitionEngine
from tierstream.engine.rules import Rules, load_rules
from tierstream.tools.generate import generate_events, write_events
from tierstream.tools.simulate import read_lines, simulate

METRIC = "avg_aum_30d"
WINDOW_DAYS = 30
SECONDS_PER_DAY = 86_400

Figures = dict[str, tuple[int, str]]  # customer_id -> (avg_aum_30d in fen, qualified tier id)


@dataclass(frozen=True)
class BatchResult:
    figures: Figures
    as_of: date  # D: the business day of the latest applied event
    seconds: float  # wall time of the whole batch, file read included
    applied: int  # records the batch kept (the engine's `applied` count, if both agree)


def check_rules(rules: Rules) -> None:
    """The batch implements one metric: refuse ladders it would silently get wrong."""
    others = sorted({c.text for c in rules.conditions() if c.metric.name != METRIC})
    if others:
        raise ValueError(
            f"{rules.source}: the nightly batch only evaluates conditions on {METRIC} "
            f"(the CMB ladder); these are not: {'; '.join(others)}"
        )


# Integer fen throughout: amounts are parsed from their decimal text, never through a
# float; DuckDB's `//` truncates toward zero, SPEC §1 rounds toward negative infinity.
_MACROS = r"""
CREATE OR REPLACE TEMP MACRO floor_div(a, b) AS
  (a // b) - CASE WHEN a % b <> 0 AND ((a % b < 0) <> (b < 0)) THEN 1 ELSE 0 END;
CREATE OR REPLACE TEMP MACRO str(j) AS
  CASE WHEN json_type(j) = 'VARCHAR' THEN j ->> '$' END;
CREATE OR REPLACE TEMP MACRO absent_or_str(j) AS
  j IS NULL OR json_type(j) = 'VARCHAR';
CREATE OR REPLACE TEMP MACRO printable(s) AS
  s IS NOT NULL AND NOT regexp_matches(replace(s, ' ', ''), '[\p{C}\p{Z}]');
CREATE OR REPLACE TEMP MACRO text_fen(t) AS
  CASE WHEN regexp_full_match(t, '-?[0-9]+(\.[0-9]+)?')
        AND length(rtrim(regexp_extract(t, '\.([0-9]+)$', 1), '0')) <= 2
  THEN (CASE WHEN starts_with(t, '-') THEN -1 ELSE 1 END)
       * (TRY_CAST(regexp_extract(t, '^-?([0-9]+)', 1) AS HUGEINT) * 100
          + CAST(rpad(rtrim(regexp_extract(t, '\.([0-9]+)$', 1), '0'), 2, '0') AS HUGEINT))
  END;
CREATE OR REPLACE TEMP MACRO money(j) AS
  CASE json_type(j)
    WHEN 'VARCHAR' THEN text_fen(j ->> '$')
    WHEN 'BIGINT' THEN CAST(j ->> '$' AS HUGEINT) * 100
    WHEN 'UBIGINT' THEN CAST(j ->> '$' AS HUGEINT) * 100
  END;
"""

# One row per line of the file, in file order (`line`), with the record as a JSON
# object; a `value` given as a string is the raw payload and is parsed here.
_RECORDS = """
CREATE TEMP TABLE records AS
WITH lines AS (
  SELECT ordinality AS line, topic, value
  FROM read_ndjson($path, columns = {'topic': 'VARCHAR', 'value': 'JSON'}, ignore_errors = true)
       WITH ORDINALITY
), payloads AS (
  SELECT line, topic, json_type(value) = 'VARCHAR' AS raw,
         CASE WHEN json_type(value) = 'VARCHAR' THEN value ->> '$' ELSE CAST(value AS VARCHAR) END AS payload,
         value
  FROM lines
  WHERE topic IN ('bank.balances', 'bank.transactions', 'bank.profiles') AND value IS NOT NULL
)
SELECT line, topic, CASE WHEN raw THEN TRY_CAST(payload AS JSON) ELSE value END AS v
FROM payloads
WHERE strlen(payload) <= $max_bytes
"""

# Fields, exact amounts in fen (converted at the rules' fixed rates), instants, the
# business day in the rules' timezone, and whether the engine would apply the record.
_VALID = r"""
CREATE TEMP TABLE valid AS
WITH parts AS (  -- each record parsed once; a missing field is NULL, a JSON null is 'null'
  SELECT line, topic, json_extract(v, [
    '$.event_id', '$.customer_id', '$.account_id', '$.product', '$.ts', '$.currency',
    '$.balance', '$.balance_after', '$.amount', '$.direction', '$.channel', '$.counterparty_bank',
    '$.attributes']) AS p
  FROM records
  WHERE json_type(v) = 'OBJECT'
), fields AS (
  SELECT line, topic, p,
    str(p[1]) AS event_id, str(p[2]) AS customer_id, str(p[3]) AS account_id, str(p[4]) AS product,
    CASE WHEN regexp_full_match(str(p[5]),
                '[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})')
         THEN TRY_CAST(regexp_replace(str(p[5]), '(\.[0-9]{6})[0-9]+', '\1') AS TIMESTAMPTZ)
    END AS ts,
    CASE WHEN p[6] IS NULL THEN 'CNY' ELSE str(p[6]) END AS currency,
    CASE WHEN topic = 'bank.balances' THEN money(p[7]) ELSE money(p[8]) END AS wire_fen,
    p[8] IS NOT NULL AS has_after
  FROM parts
), checked AS (
  SELECT f.*, r.num, r.den,
    coalesce(f.product IN ('loan', 'credit_card'), false) AS liability,
    f.event_id IS NOT NULL AND length(f.event_id) BETWEEN 1 AND 128 AND printable(f.event_id)
      AND length(f.customer_id) >= 1 AND printable(f.customer_id)
      AND f.ts IS NOT NULL AND (r.num IS NOT NULL OR f.topic = 'bank.profiles')
      AND CASE f.topic
        WHEN 'bank.balances' THEN
          f.account_id IS NOT NULL
          AND f.product IN ('deposit', 'time_deposit', 'wealth', 'fund', 'insurance', 'loan', 'credit_card')
          AND f.wire_fen IS NOT NULL
          AND (f.wire_fen >= 0 OR f.product NOT IN ('loan', 'credit_card'))
        WHEN 'bank.transactions' THEN
          f.account_id IS NOT NULL
          AND money(f.p[9]) > 0
          AND str(f.p[10]) IN ('credit', 'debit')
          AND str(f.p[11]) IN ('branch', 'atm', 'mobile', 'online', 'pos', 'transfer', 'system')
          AND absent_or_str(f.p[12])
          AND absent_or_str(f.p[4])
          AND (f.product IS NULL
               OR f.product IN ('deposit', 'time_deposit', 'wealth', 'fund', 'insurance', 'loan', 'credit_card'))
          AND (NOT f.has_after OR f.wire_fen IS NOT NULL)
          AND (NOT f.has_after OR f.wire_fen >= 0 OR coalesce(f.product NOT IN ('loan', 'credit_card'), true))
        ELSE
          json_type(f.p[13]) = 'OBJECT'
          AND NOT coalesce(list_bool_or(list_transform(json_extract(f.p[13], '$.*'),
                                        lambda x: json_type(x) IN ('ARRAY', 'OBJECT', 'NULL'))), false)
      END AS ok
  FROM fields f LEFT JOIN rates r ON r.currency = f.currency
)
SELECT line, customer_id, event_id, epoch_us(ts) AS ts_us,
       CAST(timezone($tz, ts) AS DATE) AS day, account_id,
       floor_div(wire_fen * num, den) AS fen,  -- NULL: not a balance observation
       liability
FROM checked
WHERE ok
"""

# SPEC §4/§6: too late against the running clock (the latest business day before
# this line, in file order), then duplicates: the first applied copy wins.
_APPLIED = """
CREATE TEMP TABLE applied AS
WITH clocked AS (
  SELECT *, max(day) OVER (ORDER BY line ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS clock_day
  FROM valid
)
SELECT * EXCLUDE (clock_day)
FROM clocked
WHERE clock_day IS NULL OR clock_day - day <= $lateness
QUALIFY row_number() OVER (PARTITION BY customer_id, event_id ORDER BY line) = 1
"""

# SPEC §3: each account's closing balance of day d is its latest observation (greatest
# (ts, event_id)) with business day <= d; AUM(d) sums asset accounts; the mean over
# [D-29, D] counts days before first sight as 0 and rounds toward negative infinity.
_FIGURES = """
WITH as_of AS (SELECT max(day) AS d FROM applied),
customers AS (
  SELECT customer_id, arg_min(day, line) AS first_day FROM applied GROUP BY customer_id
),
closing AS (
  SELECT customer_id, account_id, day, fen, liability
  FROM applied
  WHERE fen IS NOT NULL
  QUALIFY row_number() OVER (PARTITION BY customer_id, account_id, day ORDER BY ts_us DESC, event_id DESC) = 1
),
days AS (SELECT (SELECT d FROM as_of) - CAST(k AS INTEGER) AS d FROM range($window) t(k)),
grid AS (
  SELECT a.customer_id, a.account_id, days.d
  FROM (SELECT DISTINCT customer_id, account_id FROM closing) a CROSS JOIN days
),
balances AS (
  SELECT g.customer_id, g.d, c.fen, c.liability
  FROM grid g ASOF JOIN closing c
    ON g.customer_id = c.customer_id AND g.account_id = c.account_id AND g.d >= c.day
),
aum AS (
  SELECT customer_id, d, coalesce(sum(fen) FILTER (WHERE NOT liability), 0) AS aum
  FROM balances GROUP BY customer_id, d
),
averages AS (
  SELECT cu.customer_id,
         floor_div(coalesce(sum(a.aum) FILTER (WHERE a.d >= cu.first_day), 0), $window) AS avg_fen
  FROM customers cu LEFT JOIN aum a USING (customer_id)
  GROUP BY cu.customer_id
),
qualified AS (
  SELECT av.customer_id, av.avg_fen,
         coalesce(max(c.tier) FILTER (WHERE CASE c.op
           WHEN '>=' THEN av.avg_fen >= c.literal WHEN '>' THEN av.avg_fen > c.literal
           WHEN '<=' THEN av.avg_fen <= c.literal WHEN '<' THEN av.avg_fen < c.literal
           WHEN '==' THEN av.avg_fen = c.literal ELSE av.avg_fen <> c.literal END), 0) AS tier
  FROM averages av CROSS JOIN conditions c
  GROUP BY av.customer_id, av.avg_fen
)
SELECT q.customer_id, CAST(q.avg_fen AS HUGEINT), t.id, (SELECT d FROM as_of)
FROM qualified q JOIN tiers t ON t.tier = q.tier
"""


def nightly_batch(events: Path, rules: Rules, *, threads: int | None = None) -> BatchResult:
    """Every customer's `avg_aum_30d` (fen) and qualified tier as of the file's last day, in SQL."""
    check_rules(rules)
    start = time.perf_counter()
    con = duckdb.connect(config={"threads": threads} if threads else {})
    try:
        con.execute(_MACROS)
        con.execute("CREATE TEMP TABLE rates (currency VARCHAR, num HUGEINT, den HUGEINT)")
        rates = [("CNY", 1, 1), *((cur, n, d) for cur, (n, d) in rules.currencies.items() if cur != "CNY")]
        con.executemany("INSERT INTO rates VALUES (?, ?, ?)", rates)
        con.execute("CREATE TEMP TABLE tiers (tier INTEGER, id VARCHAR)")
        con.executemany("INSERT INTO tiers VALUES (?, ?)", list(enumerate(rules.tier_ids)))
        con.execute("CREATE TEMP TABLE conditions (tier INTEGER, op VARCHAR, literal HUGEINT)")
        # An empty table would make the CROSS JOIN drop every customer: a never-true row.
        conds = [(i, c.op, c.literal) for i, t in enumerate(rules.tiers) for c in t.any_of] or [(0, "<", 0)]
        con.executemany("INSERT INTO conditions VALUES (?, ?, ?)", conds)
        con.execute(_RECORDS, {"path": str(events), "max_bytes": rules.max_record_bytes})
        con.execute(_VALID, {"tz": rules.timezone})
        con.execute(_APPLIED, {"lateness": rules.max_lateness_days})
        rows = con.execute(_FIGURES, {"window": WINDOW_DAYS}).fetchall()
        count = con.execute("SELECT count(*) FROM applied").fetchone()
    finally:
        con.close()
    seconds = time.perf_counter() - start
    if not rows:
        raise ValueError(f"{events}: no event the engine would apply")
    figures = {cid: (int(avg), tier) for cid, avg, tier, _ in rows}
    return BatchResult(figures, rows[0][3], seconds, int(count[0]) if count else 0)


def qualified_tier(engine: PartitionEngine, c: Customer) -> int:
    """The highest tier with a condition that holds now, by the engine's own tests."""
    ev = engine.evaluator
    return next((t for t in range(len(ev.tier_ids) - 1, 0, -1) if ev.holds(c, t) is not None), 0)


def engine_figures(engine: PartitionEngine, day: date) -> Figures:
    """`avg_aum_30d` and the qualified tier as of `day` for every customer, read from
    the engine's state; customers behind `day` are first caught up by the engine itself."""
    cal = engine.calendar
    target = cal.day_from_text(day.isoformat())
    if engine.clock_day is not None and engine.clock_day > target:
        raise ValueError(f"the engine is already at {cal.day_text(engine.clock_day)}, after {day}")
    engine.advance_clock(cal.boundary(target))
    metric = engine.evaluator.getters[METRIC]
    out: list[Output] = []  # boundary outputs the catch-up causes: not needed here
    figures: Figures = {}
    for cid, c in engine.customers.items():
        if c.day < target:
            engine.catch_up(cid, c, target, out)
        figures[cid] = (metric(c), engine.rules.tier_ids[qualified_tier(engine, c)])
    return figures


def run_engine(events: Path, rules: Rules) -> tuple[PartitionEngine, float, int]:
    """`tierstream simulate` over the file (outputs counted, not written): engine, seconds, outputs."""
    count = 0

    def sink(_: Output) -> None:
        nonlocal count
        count += 1

    start = time.perf_counter()
    with events.open("rb") as stream:
        engine = simulate(rules, read_lines(stream), sink)
    return engine, time.perf_counter() - start, count


def compare(events: Path, rules_name: str = "cmb", *, threads: int | None = None) -> dict[str, Any]:
    """Engine and batch on the same file, each timed, and how many customers agree."""
    rules = load_rules(rules_name)
    check_rules(rules)
    with events.open("rb") as stream:
        lines = sum(1 for _ in read_lines(stream))
    engine, engine_seconds, _ = run_engine(events, rules)
    engine_day = engine.clock_day
    batch = nightly_batch(events, rules, threads=threads)
    ours = engine_figures(engine, batch.as_of)
    result = summarize(ours, batch, engine, engine_seconds, lines)
    # D must be the same day for both; a batch ahead of the engine would otherwise be
    # hidden by `engine_figures` moving the engine's clock to the batch's day.
    result["engine_as_of"] = engine.calendar.day_text(engine_day) if engine_day is not None else None
    return result


def summarize(
    ours: Mapping[str, tuple[int, str]],
    batch: BatchResult,
    engine: PartitionEngine,
    engine_seconds: float,
    lines: int,
) -> dict[str, Any]:
    theirs = batch.figures
    ids = sorted(set(ours) | set(theirs))
    avg_agree = sum(1 for c in ids if c in ours and c in theirs and ours[c][0] == theirs[c][0])
    tier_agree = sum(1 for c in ids if c in ours and c in theirs and ours[c][1] == theirs[c][1])
    samples = [
        {"customer": c, "engine": ours.get(c), "batch": theirs.get(c)}
        for c in ids
        if ours.get(c) != theirs.get(c)
    ][:5]
    return {
        "customers": len(ids),
        "avg_agree": avg_agree,
        "tier_agree": tier_agree,
        "batch_seconds": round(batch.seconds, 3),
        "engine_seconds": round(engine_seconds, 3),
        "as_of": batch.as_of.isoformat(),
        "disagreements": samples,
        "events": lines,
        "applied": {"engine": engine.outcomes["applied"], "batch": batch.applied},
        # Staleness: the batch's figures are as of the last close, so an event just after
        # the cutoff shows a day later plus the run; the engine's figures move with each
        # event (its processing time here; bench/run.py measures the broker latency).
        "staleness": {
            "batch_seconds_min": round(batch.seconds, 3),
            "batch_seconds_max": round(SECONDS_PER_DAY + batch.seconds, 3),
            "engine_seconds_per_event": engine_seconds / lines if lines else 0.0,
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Nightly DuckDB batch vs the engine, same file, same run.")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument(
        "--rules", default="cmb", help="a preset or rules file whose conditions are on avg_aum_30d"
    )
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: all cores)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bank.jsonl"
        with path.open("w", encoding="utf-8") as out:
            write_events(generate_events(args.customers, args.days, seed=1, usd=False), out)
        result = compare(path, args.rules, threads=args.threads)
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
