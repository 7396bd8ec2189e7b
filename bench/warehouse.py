"""A synthetic warehouse snapshot written by DuckDB (no event file): the bootstrap bench
reads it. Each customer has a deposit and a wealth account whose balance changes on
about a third of the days, a loan for one in five, and activity on about half the days.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb


def write_warehouse(
    out: Path, customers: int, days: int, as_of: date, fmt: str = "parquet"
) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    start = as_of - timedelta(days=days - 1)
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    ext = "parquet" if fmt == "parquet" else "csv"
    opts = "(FORMAT parquet)" if fmt == "parquet" else "(HEADER, DELIMITER ',')"
    ids = f"SELECT 'C' || lpad(i::VARCHAR, 8, '0') AS customer_id, i FROM range({customers}) t(i)"
    queries = {
        "customers": f"SELECT customer_id, DATE '{start}' + (i % 30)::INTEGER AS first_seen, "
        f"DATE '{as_of}' - (i % 120)::INTEGER AS last_activity FROM ({ids})",
        "balances": f"""
            SELECT customer_id, customer_id || '-' || acct AS account_id,
                   CASE acct WHEN 'D' THEN 'deposit' WHEN 'W' THEN 'wealth' ELSE 'loan' END AS product,
                   DATE '{start}' + d::INTEGER AS business_date,
                   CAST(((hash(i, acct, d) % 2000000000) / 100.0 + (i % 7) * 100000) AS DECIMAL(18, 2)) AS balance
            FROM ({ids}) c, (VALUES ('D'), ('W'), ('L')) a(acct), range({days}) r(d)
            WHERE (d = 0 OR hash(i, acct, d, 'chg') % 3 = 0) AND (acct <> 'L' OR i % 5 = 0)
        """,
        "activity": f"""
            SELECT customer_id, DATE '{start}' + d::INTEGER AS business_date,
                   (1 + hash(i, d) % 4)::INTEGER AS txn_count,
                   CAST((hash(i, d, 'd') % 500000) / 100.0 AS DECIMAL(18, 2)) AS debit,
                   CAST((hash(i, d, 'c') % 500000) / 100.0 AS DECIMAL(18, 2)) AS credit,
                   CAST((hash(i, d, 's') % 100000) / 100.0 AS DECIMAL(18, 2)) AS spend,
                   CAST(0 AS DECIMAL(18, 2)) AS external_outflow
            FROM ({ids}) c, range({days}) r(d)
            WHERE hash(i, d, 'act') % 2 = 0
        """,
        "attributes": f"SELECT customer_id, 'household_income' AS name, ((i * 7919) % 400000)::VARCHAR AS value, "
        f"'number' AS type, '{start}T09:00:00+08:00' AS ts FROM ({ids})",
    }
    rows = {}
    for name, sql in queries.items():
        con.execute(f"COPY ({sql}) TO '{out / f'{name}.{ext}'}' {opts}")
        rows[name] = con.execute(f"SELECT count(*) FROM '{out / f'{name}.{ext}'}'").fetchall()[0][0]
    con.close()
    return rows


def scan_and_group(directory: Path) -> float:
    """The plain DuckDB reference: read every file, group by customer with sums."""
    import time

    con = duckdb.connect()
    t0 = time.perf_counter()
    con.execute(
        f"""
        SELECT count(*) FROM (
          SELECT customer_id, sum(balance), count(*) FROM read_parquet('{directory}/balances.parquet') GROUP BY customer_id
        ) b JOIN (
          SELECT customer_id, sum(txn_count), sum(debit), sum(credit), sum(spend), sum(external_outflow)
          FROM read_parquet('{directory}/activity.parquet') GROUP BY customer_id
        ) a USING (customer_id)
        """
    ).fetchall()
    seconds = time.perf_counter() - t0
    con.close()
    return seconds
