"""`bootstrap` and `export`: going live (SPEC §9)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .common import (
    AppIdOpt,
    BrokerOpt,
    PartitionerOpt,
    PartitionsOpt,
    PrefixOpt,
    _check_new_dir,
    _instant,
    _quiet_aiokafka,
    _rules,
    _settings_from,
    app,
    err,
    fail,
)


@app.command()
def bootstrap(
    snapshot_dir: Annotated[
        Path, typer.Option("--snapshot", help="A warehouse snapshot folder (with --as-of) or a state export.")
    ],
    rules: Annotated[
        str | None, typer.Option("--rules", help="Rules file or preset [env TIERSTREAM_RULES].")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="The business day the warehouse snapshot closes, YYYY-MM-DD."),
    ] = None,
    from_ts: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="The cut-over instant: per input partition, the first record stamped at or after it.",
        ),
    ] = None,
    offsets: Annotated[
        Path | None,
        typer.Option(
            "--offsets", help="The cut-over as a file of topic,partition,offset (the first to consume)."
        ),
    ] = None,
    broker: BrokerOpt = None,
    app_id: AppIdOpt = None,
    partitions: PartitionsOpt = None,
    topic_prefix: PrefixOpt = None,
    partitioner: PartitionerOpt = None,
) -> None:
    """Write a new deployment's tables from a snapshot; a worker then starts at the cut-over."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..broker import KafkaIOError
    from ..golive.bootstrap import bootstrap as run_bootstrap

    settings = _settings_from(
        {
            "rules": rules,
            "broker_url": broker,
            "app_id": app_id,
            "partitions": partitions,
            "topic_prefix": topic_prefix,
            "partitioner": partitioner,
        }
    )
    loaded = _rules(settings.rules)
    from_us = _instant(from_ts, "--from") if from_ts is not None else None
    if as_of is not None and len(as_of) != 10:
        fail(f"--as-of {as_of!r} is not a date like 2026-03-31")
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def progress(phase: str, done: int, total: int | None) -> None:
        if phase not in tasks:
            tasks[phase] = bar.add_task(f"{phase} customers", total=total)
        bar.update(tasks[phase], completed=done)

    import logging

    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    try:
        with bar:
            summary = run_bootstrap(
                settings,
                loaded,
                snapshot_dir,
                as_of,
                from_us=from_us,
                offsets_file=offsets,
                progress=progress,
            )
    except KafkaIOError as exc:
        fail(str(exc))
    except ValueError as exc:  # snapshot, export and cut-over refusals: nothing was written
        fail(str(exc))
    for warning in summary.warnings:
        err.print(warning, highlight=False, soft_wrap=True)
    tiers = ", ".join(f"{t} {summary.tiers.get(t, 0):,}" for t in loaded.tier_ids)
    read = ", ".join(f"{name} {n:,}" for name, n in summary.rows_read.items())
    err.print(
        f"bootstrapped app id {settings.app_id}: {summary.customers:,} customers on {summary.partitions} partitions "
        f"({settings.partitioner}); rows read: {read}; tiers: {tiers}; {summary.bytes_written / 1e6:,.1f} MB "
        f"written in {summary.seconds:.1f} s; clock {summary.clock}"
        + (
            f"; {summary.retiered:,} customers held a tier these rules do not have and took their qualified tier"
            if summary.retiered
            else ""
        ),
        highlight=False,
    )


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", help="A new folder for the state export.")],
    rules: Annotated[
        str | None, typer.Option("--rules", help="The rules the deployment runs [env TIERSTREAM_RULES].")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or parquet.")] = "jsonl",
    broker: BrokerOpt = None,
    app_id: AppIdOpt = None,
    partitions: PartitionsOpt = None,
    partitioner: PartitionerOpt = None,
) -> None:
    """Export a deployment's state (every field of every customer) from its tables' changelog."""
    from aiokafka.errors import KafkaError

    from ..broker import KafkaIOError
    from ..golive.export import export_deployment

    if fmt not in ("jsonl", "parquet"):
        fail(f"--format {fmt!r}: write jsonl or parquet")
    settings = _settings_from(
        {
            "rules": rules,
            "broker_url": broker,
            "app_id": app_id,
            "partitions": partitions,
            "partitioner": partitioner,
        }
    )
    loaded = _rules(settings.rules)
    _check_new_dir(out, "--out")
    _quiet_aiokafka()
    try:
        manifest = export_deployment(settings, loaded, out, fmt)
    except (KafkaIOError, KafkaError, OSError) as exc:
        fail(f"cannot read the tables of app id {settings.app_id} ({exc}); check TIERSTREAM_BROKER_URL")
    except ValueError as exc:
        fail(str(exc))
    err.print(
        f"exported {manifest.customers:,} customers of app id {settings.app_id} to {out}", highlight=False
    )
