"""`simulate`, `generate` and `snapshot`: event files in, outputs and state out."""

from __future__ import annotations

import json
from contextlib import ExitStack
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..engine.packed import DEFAULT_DECODED
from ..engine.rules import LIFECYCLE_STAGES, Rules
from ..engine.timeutil import wall_clock_us
from ..enginebuild import current
from .common import (
    RulesOpt,
    _check_new_dir,
    _check_outputs,
    _event_file_or_fail,
    _instant,
    _open_in,
    _open_out,
    _rules,
    _warn_if_not_events,
    app,
    err,
    fail,
)


@app.command()
def simulate(
    rules: RulesOpt,
    events: Annotated[Path, typer.Option("--events", help="Event file (JSONL) read in order.")],
    until: Annotated[
        str | None, typer.Option("--until", help="Move the clock to this instant at the end.")
    ] = None,
    now: Annotated[str | None, typer.Option("--now", help="Wall clock for future_timestamp checks.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output event file (default stdout).")] = None,
    stats_file: Annotated[
        Path | None, typer.Option("--stats", help="Write the summary as JSON here.")
    ] = None,
    snapshot: Annotated[
        Path | None,
        typer.Option(
            "--snapshot",
            help="Start from this warehouse snapshot (with --as-of) or state export instead of empty; "
            "the event file then holds the records from the cut-over on.",
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="The business day the warehouse snapshot closes, YYYY-MM-DD."),
    ] = None,
    export_dir: Annotated[
        Path | None,
        typer.Option("--export", help="Write the final state here as a state export (a new folder)."),
    ] = None,
    decoded: Annotated[
        int,
        typer.Option(
            "--decoded",
            min=1,
            help="Customers kept decoded in memory (~2.5 KB each); beyond that many, the least "
            "recently used are held packed (~1.2 KB each), at some cost in speed.",
        ),
    ] = DEFAULT_DECODED,
) -> None:
    """Run the engine over an event file, with no broker; outputs as an event file."""
    from ..engine.partition import PartitionEngine
    from ..safeio import Output as Out
    from ..safeio import atomic_path
    from ..tools.eventfile import check_event_file, progress_lines
    from ..tools.simulate import LineWriter, max_line_bytes, read_lines
    from ..tools.simulate import simulate as run
    from ..tools.simulate import stats as summarize

    loaded = _rules(rules)
    until_us, now_us = _instant(until, "--until"), _instant(now, "--now")
    engine = PartitionEngine(loaded, now=(lambda: now_us) if now_us is not None else None, wall=wall_clock_us)
    if as_of is not None and snapshot is None:
        fail("--as-of goes with --snapshot DIR (the warehouse snapshot it dates)")
    inputs = [events] if snapshot is None else [events, snapshot]
    _check_outputs(
        [Out("--out", out), Out("--stats", stats_file), Out("--export", export_dir, kind="dir")], inputs
    )
    if export_dir is not None:
        _check_new_dir(export_dir, "--export")
    if snapshot is not None:
        _start_from(engine, loaded, snapshot, as_of)
    with ExitStack() as stack:
        source = stack.enter_context(_open_in(events))
        _event_file_or_fail(check_event_file(source, events))
        stats_tmp = stack.enter_context(atomic_path(stats_file)) if stats_file is not None else None
        sink = _open_out(out, stack)

        writer = LineWriter(sink)
        lines = progress_lines(read_lines(source, max_line_bytes(loaded)), source, "simulate")
        engine = run(
            loaded, lines, writer.emit, until=until_us, wall=wall_clock_us, engine=engine, decoded=decoded
        )
        writer.close()
        if export_dir is not None:
            _export_engine(engine, loaded, export_dir)
        summary = summarize(engine)
        if stats_tmp is not None:
            stats_tmp.write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", "utf-8")
    _warn_if_not_events(events, summary)
    _print_summary(loaded, summary)
    err.print(f"engine: {current()}", highlight=False, soft_wrap=True)


def _start_from(engine: Any, rules: Rules, directory: Path, as_of: str | None) -> None:
    from ..golive.load import open_source, start_engine

    try:
        source = open_source(directory, rules, as_of)
        for warning in source.warnings:
            err.print(warning, highlight=False, soft_wrap=True)
        n = start_engine(engine, source)
    except ValueError as exc:
        fail(str(exc))
    err.print(
        f"started from the {source.kind} {directory}: {n:,} customers, clock "
        f"{engine.calendar.isoformat(engine.clock)}",
        highlight=False,
    )


def _export_engine(engine: Any, rules: Rules, out: Path) -> None:
    from ..golive import statefile
    from ..golive.export import engine_manifest

    work = statefile.atomic_dir(out)
    try:
        rows = ((0, engine.record(cid)) for cid in engine.customers)  # first-seen order, as swept
        n = statefile.write_export(work, engine_manifest(engine, rules, "murmur2"), rows, engine.calendar)
        statefile.finish_dir(work, out)
    except BaseException:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
        raise
    err.print(f"exported {n:,} customers to {out}", highlight=False)


def _print_summary(rules: Rules, summary: dict[str, Any]) -> None:
    labels = {t.id: t.label for t in rules.tiers}
    outcomes = Table(title="records", title_justify="left")
    outcomes.add_column("outcome")
    outcomes.add_column("records", justify="right")
    for name, n in summary["outcomes"].items():
        outcomes.add_row(name, f"{n:,}")
    for name, n in summary["dead_letters"].items():
        outcomes.add_row(f"  dead letter: {name}", f"{n:,}")
    tiers = Table(title=f"tiers ({rules.scheme} {rules.version})", title_justify="left")
    tiers.add_column("tier")
    tiers.add_column("label")
    tiers.add_column("customers", justify="right")
    total = sum(summary["tiers"].values()) or 1
    tiers.add_column("share", justify="right")
    for tid, n in summary["tiers"].items():
        tiers.add_row(tid, labels[tid], f"{n:,}", f"{100 * n / total:.1f}%")
    matrix = Table(title="tier changes (from → to)", title_justify="left")
    matrix.add_column("from \\ to")
    ids = list(summary["tiers"])
    for tid in ids:
        matrix.add_column(tid, justify="right")
    for src in ids:
        row = summary["migrations"].get(src, {})
        matrix.add_row(src, *[f"{row.get(dst, 0):,}" if dst != src else "·" for dst in ids])
    for table in (outcomes, tiers, matrix):
        err.print(table)
    _print_segments(rules, summary["segments"])


def _print_segments(rules: Rules, counts: dict[str, dict[str, int]]) -> None:
    """The published segments at the end: lifecycle stages, the grid as its 3 x 3 (or k x k)
    table, and the most common RFM scores."""
    published = rules.published_segments()
    if "lifecycle" in published:
        stages = counts.get("lifecycle", {})
        err.print(
            "lifecycle: " + ", ".join(f"{s} {stages.get(s, 0):,}" for s in LIFECYCLE_STAGES),
            highlight=False,
        )
    if "rfm" in published:
        rfm = sorted(counts.get("rfm", {}).items(), key=lambda kv: (-kv[1], kv[0]))
        top = ", ".join(f"{v} {n:,}" for v, n in rfm[:6])
        err.print(f"rfm: {len(rfm):,} scores in use; most customers: {top}", highlight=False)
    if "grid" in published:
        value, activity = rules.serving_grid()
        cells = counts.get("grid", {})
        grid = Table(title="grid (value × activity)", title_justify="left")
        grid.add_column("value \\ activity")
        for a in activity.names:
            grid.add_column(a, justify="right")
        for v in reversed(value.names):  # high value on top
            grid.add_row(v, *[f"{cells.get(f'{v}/{a}', 0):,}" for a in activity.names])
        err.print(grid)


@app.command()
def generate(
    customers: Annotated[int, typer.Option("--customers", min=1, help="Number of customers.")],
    days: Annotated[int, typer.Option("--days", min=1, help="Number of days.")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same file).")],
    start: Annotated[
        str | None, typer.Option("--start", help="First day, YYYY-MM-DD (default 2026-01-01).")
    ] = None,
    noise: Annotated[bool, typer.Option("--noise", help="Add redeliveries and bad records.")] = False,
    late: Annotated[bool, typer.Option("--late", help="Delay a few events.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Output file (default stdout).")] = None,
) -> None:
    """A realistic synthetic bank as an event file, in time order, streamed."""
    from ..tools.generate import generate_events, write_events

    first: date | None = None
    if start is not None:
        try:
            first = date.fromisoformat(start)
        except ValueError:
            fail(f"--start: {start!r} is not a date like 2026-01-01")
    from ..safeio import Output as Out

    _check_outputs([Out("--out", out)])
    with ExitStack() as stack:
        sink = _open_out(out, stack)
        n = write_events(generate_events(customers, days, seed, first, noise, late, usd=noise), sink)
    err.print(f"wrote {n:,} events for {customers:,} customers over {days} days", highlight=False)


@app.command()
def snapshot(
    rules: RulesOpt,
    events: Annotated[Path, typer.Option("--events", help="Event file (JSONL), in time order.")],
    until: Annotated[
        str,
        typer.Option(
            "--until",
            help="The cut: a date YYYY-MM-DD (the end of that business day) or an instant; the snapshot "
            "holds the records before the first one dated after that business day.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="A new folder for the snapshot files.")],
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    minimal: Annotated[
        bool, typer.Option("--minimal", help="Leave out every optional column and file (SPEC §9).")
    ] = False,
    tail: Annotated[
        Path | None, typer.Option("--tail", help="Also write the lines from the cut on here (a new file).")
    ] = None,
) -> None:
    """Write the warehouse snapshot (SPEC §9) of an event file's records up to a cut."""
    from ..golive.snapshot import write_snapshot
    from ..tools.simulate import read_lines

    loaded = _rules(rules)
    if fmt not in ("csv", "parquet"):
        fail(f"--format {fmt!r}: write csv or parquet")
    until_us = _cut_instant(until, loaded)
    _check_new_dir(out, "--out")
    if tail is not None and tail.exists():
        fail(f"--tail {tail}: exists; give a new file (nothing is overwritten)")
    with ExitStack() as stack:
        source = stack.enter_context(_open_in(events))
        tail_file = None
        if tail is not None:  # written beside, renamed at the end (safeio): never left half-written
            from ..safeio import atomic_path

            tail_file = stack.enter_context(stack.enter_context(atomic_path(tail)).open("wb"))
        summary = write_snapshot(
            loaded, read_lines(source), until_us, out, fmt=fmt, minimal=minimal, tail=tail_file
        )
    rows = ", ".join(f"{name} {n:,}" for name, n in summary.rows.items())
    cut = f"line {summary.cut_line + 1:,}" if summary.cut_line is not None else "the end of the file"
    err.print(
        f"snapshot as of {summary.as_of} in {out}: {summary.customers:,} customers from {summary.records_read:,} "
        f"records (cut at {cut}); rows: {rows}",
        highlight=False,
    )


def _cut_instant(text: str, rules: Rules) -> int:
    """A date means the last instant of that business day in the rules' timezone."""
    from ..engine.timeutil import Calendar

    if len(text) == 10:
        cal = Calendar(rules.timezone)
        try:
            day = Calendar.day_from_text(text)
        except ValueError:
            fail(
                f"--until {text!r} is not a date like 2026-03-31 or an instant like 2026-03-31T23:59:59+08:00"
            )
        return cal.boundary(day + 1) - 1
    value = _instant(text, "--until")
    assert value is not None
    return value
