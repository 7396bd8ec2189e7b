"""`explain` and `whatif`: one customer's story, a rules change's effect."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .common import (
    RulesOpt,
    _check_outputs,
    _event_file_or_fail,
    _instant,
    _open_in,
    _rules,
    app,
    err,
    fail,
)


@app.command()
def explain(
    rules: RulesOpt,
    events: Annotated[Path, typer.Option("--events", help="Event file (JSONL), the customer's history.")],
    customer: Annotated[str, typer.Option("--customer", help="The customer id.")],
    at: Annotated[
        str | None, typer.Option("--at", help="As of this instant (default: the end of the file).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the explanation as a JSON document.")
    ] = False,
) -> None:
    """Why a customer is in a tier: balances, metrics, every condition, cooldowns, outputs."""
    from ..tools.eventfile import check_event_file, progress_lines
    from ..tools.explain import explain as build
    from ..tools.explain import replay_until
    from ..tools.simulate import max_line_bytes, read_lines

    loaded = _rules(rules)
    at_us = _instant(at, "--at")
    with _open_in(events) as source:
        _event_file_or_fail(check_event_file(source, events))
        lines = progress_lines(read_lines(source, max_line_bytes(loaded)), source, "explain")
        engine, outputs = replay_until(loaded, lines, at_us, customer)
    try:
        doc = build(engine, customer, outputs, at_us)
    except KeyError:
        fail(f"{events}: no applied event for customer {customer!r}" + (f" up to {at}" if at else ""))
    if as_json:
        print(json.dumps(doc, ensure_ascii=False, indent=2))
        return
    _print_explanation(doc)


def _print_explanation(doc: dict[str, Any]) -> None:
    out = Console()
    out.print(
        f"[bold]{doc['customer_id']}[/] — {doc['tier_label']} [bold]{doc['tier']}[/] since {doc['since']}"
        f"  (as of {doc['as_of']}, {doc['rules']}; first seen {doc['first_seen']})",
        soft_wrap=True,
    )
    if doc["pending_downgrade"]:
        p = doc["pending_downgrade"]
        out.print(
            f"[yellow]pending downgrade[/]: below since {p['below_since']}, takes effect {p['downgrade_on']}"
        )
    if doc["next_tier"]:
        n = doc["next_tier"]
        out.print(
            f"next tier [bold]{n['tier']}[/]: {n['metric']} {n['value']} of {n['threshold']} — {n['advice']}"
        )
    cond = Table(title="conditions", title_justify="left")
    for col in ("tier", "condition", "value", "threshold", "holds"):
        cond.add_column(col, justify="right" if col in ("value", "threshold") else "left")
    for c in doc["conditions"]:
        cond.add_row(
            c["tier"], c["condition"], str(c["value"]), str(c["threshold"]), "✔" if c["holds"] else "✘"
        )
    out.print(cond)
    metrics = Table(title="metrics", title_justify="left")
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    for k, v in doc["metrics"].items():
        metrics.add_row(k, str(v))
    out.print(metrics)
    for name, ser in doc["series"].items():
        out.print(
            f"{name.upper()} {ser['from']} … {ser['to']}: {ser['sparkline']}  (last {ser['daily'][-1]})"
        )
    accounts = Table(title="accounts (closing balances)", title_justify="left")
    for col in ("account", "side", "balance", "observed"):
        accounts.add_column(col, justify="right" if col == "balance" else "left")
    for a in doc["accounts"]:
        accounts.add_row(a["account_id"], a["side"], a["closing_balance"], a["as_of"])
    out.print(accounts)
    cd = doc["cooldowns"]
    for t, v in cd["opportunity"].items():
        out.print(f"opportunity to {t}: last {v['last']}, next allowed {v['next_allowed']}")
    for r, v in cd["churn"].items():
        out.print(f"churn {r}: last {v['last']}, next allowed {v['next_allowed']}")
    _print_segments(out, doc["segments"])
    events = Table(title="outputs so far", title_justify="left")
    for col in ("effective_at", "type", "what"):
        events.add_column(col)
    for o in doc["outputs"]:
        events.add_row(o["effective_at"], o["type"], _what(o))
    out.print(events)


def _what(o: dict[str, Any]) -> str:
    """One output, in a few words."""
    if o["type"] == "tier_changed":
        return f"{o['from_tier']} → {o['to_tier']} ({o['matched']})"
    if o["type"] == "upgrade_opportunity":
        return f"{o['target_tier']} gap {o['gap']}"
    if o["type"] == "segment_changed":
        return f"{o['segment']} {o['from'] or '∅'} → {o['to']}"
    return f"{o['reason']} ({o['severity']})"


def _print_segments(out: Console, segments: dict[str, Any]) -> None:
    """Each segment: its value (as last published, or served live), what the next boundary
    would give, and each dimension's metric, value, score and the band around the value."""
    out.print("[bold]segments[/] (value as last published; → what the next boundary gives)")
    for name, seg in segments.items():
        note = "" if seg["published"] else "  (served, not published: no segments section)"
        out.print(f"  {name:<10} {seg['value'] or '∅'} → {seg['now']}{note}", highlight=False)
        if name == "lifecycle":
            r = seg["reads"]
            out.print(
                f"    dormant spell {'yes' if r['dormant_warned_this_spell'] else 'no'}, churn risk "
                f"{'yes' if r['churn_risk'] else 'no'}, first seen {r['days_since_first_seen']} days ago "
                f"(new for {r['new_days']}), inactive_days {r['inactive_days']}",
                highlight=False,
            )
            continue
        for d in seg["dimensions"]:
            low, high = d["band"]["from"], d["band"]["below"]
            band = f"[{low if low is not None else '−∞'}, {high if high is not None else '∞'})"
            named = f" {d['name']}" if d["name"] != str(d["score"]) else ""
            order = ", less is better" if d["order"] == "less is better" else ""
            out.print(
                f"    {d['role']:<10} {d['metric']} {d['value']}: score {d['score']}{named}, band {band}{order}",
                highlight=False,
            )


#: a segment matrix wider than this prints as a list of its moves
MATRIX_COLUMNS = 6


def _print_segment_matrix(out: Console, name: str, matrix: dict[str, dict[str, int]], csv: bool) -> None:
    """A segment's A → B matrix: a table when it fits the screen, else the moves, largest first."""
    columns = list(next(iter(matrix.values()), {}))
    if len(columns) <= MATRIX_COLUMNS and len(matrix) <= MATRIX_COLUMNS:
        out.print(f"segment {name}: A → B", highlight=False)
        table = Table()
        table.add_column("A \\ B")
        for vb in columns:
            table.add_column(vb, justify="right")
        for va, row in matrix.items():
            table.add_row(va, *[f"{row[vb]:,}" for vb in columns])
        out.print(table)
        return
    same = sum(row.get(va, 0) for va, row in matrix.items())
    moves = sorted(
        ((n, va, vb) for va, row in matrix.items() for vb, n in row.items() if n and va != vb),
        key=lambda m: (-m[0], m[1], m[2]),
    )
    out.print(f"segment {name}: {same:,} unchanged, {sum(n for n, _, _ in moves):,} moved", highlight=False)
    for n, va, vb in moves[:8]:
        out.print(f"  {va} → {vb}: {n:,}", highlight=False)
    if len(moves) > 8:
        where = "segments.csv" if csv else "--csv DIR writes segments.csv"
        out.print(f"  (+{len(moves) - 8:,} more moves; {where})", highlight=False)


@app.command()
def whatif(
    events: Annotated[Path, typer.Option("--events", help="Event file (JSONL).")],
    rules: Annotated[
        list[str], typer.Option("--rules", help="Give twice: the ladder now (A), then the candidate (B).")
    ],
    at: Annotated[str | None, typer.Option("--at", help="Compare as of this instant.")] = None,
    monthly: Annotated[
        bool, typer.Option("--monthly", help="Also a migration matrix at each month end.")
    ] = False,
    csv_dir: Annotated[Path | None, typer.Option("--csv", help="Write the tables as CSV files here.")] = None,
    plot_file: Annotated[
        Path | None, typer.Option("--plot", help="Draw the tier distribution over time (PNG).")
    ] = None,
) -> None:
    """Two ladders over the same history: who moves, tier by tier."""
    from ..safeio import Output as Out
    from ..tools.eventfile import check_event_file, progress_lines
    from ..tools.simulate import max_line_bytes, read_lines
    from ..tools.whatif import PLOT_SUFFIXES, plot, run_whatif, write_csv

    if len(rules) != 2:
        fail("--rules: give exactly two, e.g. --rules cmb --rules candidate.yaml")
    rules_a, rules_b = _rules(rules[0]), _rules(rules[1])
    at_us = _instant(at, "--at")
    _check_outputs(
        [Out("--csv", csv_dir, kind="dir"), Out("--plot", plot_file, suffixes=PLOT_SUFFIXES)], [events]
    )
    with _open_in(events) as source:
        _event_file_or_fail(check_event_file(source, events))
        lines = progress_lines(read_lines(source, max_line_bytes(rules_a)), source, "whatif")
        result = run_whatif(rules_a, rules_b, lines, at_us, monthly)
    if not result.final.a:
        fail(
            f"{events}: no applied event"
            + (f" at or before --at {at}" if at else "")
            + "; nothing to compare"
            + (" (give a later --at)" if at else "")
        )
    out = Console()
    out.print(
        f"A: {rules_a.scheme} {rules_a.version}; B: {rules_b.scheme} {rules_b.version}", highlight=False
    )
    snaps = [*result.monthly, result.final] if monthly else [result.final]
    for snap in snaps:
        table = Table(title=f"A → B as of {snap.label}", title_justify="left")
        table.add_column("A \\ B")
        for tb in rules_b.tier_ids:
            table.add_column(tb, justify="right")
        for ta, row in result.matrix(snap).items():
            table.add_row(ta, *[f"{n:,}" for n in row.values()])
        out.print(table)
    moves = Table(title="under B, by tier under A", title_justify="left")
    for col in ("tier (A)", "up", "down", "unchanged", "A count", "B count"):
        moves.add_column(col, justify="left" if col == "tier (A)" else "right")
    dist = result.distribution()
    for ta, m in result.movement().items():
        moves.add_row(
            ta,
            f"{m['up']:,}",
            f"{m['down']:,}",
            f"{m['unchanged']:,}",
            f"{dist['A'].get(ta, 0):,}",
            f"{dist['B'].get(ta, 0):,}" if ta in rules_b.tier_ids else "—",
        )
    out.print(moves)
    for name in result.segment_names():
        _print_segment_matrix(out, name, result.segment_matrix(name), bool(csv_dir))
    cells = result.cell_counts()
    for (ta, tb), ids in sorted(result.samples().items()):
        if ta != tb:
            more = cells[ta, tb] - len(ids)
            tail = f" (+{more:,} more" + ("; all in customers.csv)" if csv_dir else "; --csv DIR lists all)")
            out.print(f"  {ta} → {tb}: {', '.join(ids)}" + (tail if more > 0 else ""), highlight=False)
    if csv_dir is not None:
        for path in write_csv(result, csv_dir):
            err.print(f"wrote {path}", highlight=False)
    if plot_file is not None:
        plot(result, plot_file)
        err.print(f"wrote {plot_file}", highlight=False)
