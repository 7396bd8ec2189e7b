"""The `tierstream` command line (SPEC §8). User mistakes end in one line, never a traceback."""

from __future__ import annotations

import json
import sys
from collections.abc import Coroutine, Iterable
from contextlib import ExitStack
from datetime import date
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, NoReturn, TextIO

import typer
from rich.console import Console
from rich.table import Table

from ..engine.rules import Rules, RulesError, load_rules
from ..engine.timeutil import TimestampError, parse_instant, wall_clock_us

if TYPE_CHECKING:
    from ..settings import Settings

app = typer.Typer(
    name="tierstream",
    help="Real-time customer tiering for retail banks (月日均 ladders) on Kafka.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
rules_app = typer.Typer(help="Validate and show rules files.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
redis_app = typer.Typer(help="The Redis serving cache.", no_args_is_help=True)
app.add_typer(redis_app, name="redis")
dlq_app = typer.Typer(help="The dead-letter topic.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
err = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from .help import version

        print(f"tierstream {version()}")
        raise typer.Exit(0)


@app.callback()
def _root(
    _version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Real-time customer tiering for retail banks (月日均 ladders) on Kafka."""


class UserError(Exception):
    """A mistake in arguments or files: printed as one line, exit status 2."""


def fail(message: str) -> NoReturn:
    raise UserError(message)


def _rules(spec: str) -> Rules:
    try:
        rules = load_rules(spec)
    except RulesError as exc:
        fail(str(exc))
    for warning in rules.warnings:
        err.print(warning, markup=False, highlight=False)
    return rules


def _instant(text: str | None, flag: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_instant(text)
    except TimestampError as exc:
        fail(f"{flag}: {exc}")


def _open_in(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except OSError as exc:
        fail(f"{path}: cannot read the event file ({exc.strerror}); check the path")


def _event_file_or_fail(problem: tuple[str, str] | None) -> None:
    """A compressed or binary file is refused before the run; an empty one is a warning."""
    if problem is None:
        return
    kind, message = problem
    if kind == "error":
        fail(message)
    print(f"tierstream: warning: {message}", file=sys.stderr)


def _warn_if_not_events(path: Path, summary: dict[str, Any]) -> None:
    from ..tools.eventfile import not_events_warning

    warning = not_events_warning(path, summary)
    if warning:
        print(f"tierstream: warning: {warning}", file=sys.stderr)


def _open_out(path: Path | None, stack: ExitStack) -> TextIO:
    """The output file, written beside the target and renamed over it at the end (safeio)."""
    from ..safeio import atomic_text

    try:
        return stack.enter_context(atomic_text(path))
    except OSError as exc:
        fail(f"{path}: cannot write ({exc.strerror}); check the directory exists")


def _check_outputs(outputs: Iterable[Any], inputs: Iterable[Path] = ()) -> None:
    """Every output path checked before the run starts (safeio.check_outputs)."""
    from ..safeio import OutputRefused, check_outputs

    try:
        check_outputs(outputs, inputs)
    except OutputRefused as exc:
        fail(str(exc))


RulesOpt = Annotated[str, typer.Option("--rules", help="A rules file or a preset: cmb, psbc, ccb, spdb.")]


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
) -> None:
    """Run the engine over an event file, with no broker; outputs as an event file."""
    from ..engine.evaluate import Output
    from ..engine.partition import PartitionEngine
    from ..safeio import Output as Out
    from ..safeio import atomic_path
    from ..tools.eventfile import check_event_file, progress_lines
    from ..tools.simulate import max_line_bytes, output_line, read_lines
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

        def emit(output: Output) -> None:
            sink.write(output_line(output))

        lines = progress_lines(read_lines(source, max_line_bytes(loaded)), source, "simulate")
        engine = run(loaded, lines, emit, until=until_us, wall=wall_clock_us, engine=engine)
        if export_dir is not None:
            _export_engine(engine, loaded, export_dir)
        summary = summarize(engine)
        if stats_tmp is not None:
            stats_tmp.write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", "utf-8")
    _warn_if_not_events(events, summary)
    _print_summary(loaded, summary)


def _check_new_dir(path: Path, flag: str) -> None:
    """An output folder must be new (or empty): nothing a user owns is overwritten."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        fail(f"{flag} {path}: exists and is not an empty folder; give a new one (nothing is overwritten)")
    if not path.resolve().parent.is_dir():
        fail(f"{flag} {path}: its parent folder does not exist; create it first")


def _start_from(engine: Any, rules: Rules, directory: Path, as_of: str | None) -> None:
    from ..golive.load import open_source, start_engine

    try:
        source = open_source(directory, rules, as_of)
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


BrokerOpt = Annotated[
    str | None,
    typer.Option("--broker", help="Kafka bootstrap, kafka://host:port (overrides TIERSTREAM_BROKER_URL)."),
]


def _broker_settings(broker: str | None) -> Settings:
    """The settings object (environment and defaults), with --broker on top."""
    settings: Settings = _settings_from({"broker_url": broker})
    return settings


def _quiet_aiokafka() -> None:
    """aiokafka logs each failed connection attempt at ERROR; our one-line error says it all."""
    import logging

    logging.getLogger("aiokafka").addHandler(logging.NullHandler())


def _broker_call(settings: Settings, work: Coroutine[Any, Any, int]) -> int:
    """Run one broker coroutine; broker trouble ends in one line, not a traceback."""
    import asyncio

    from ..broker import KafkaIOError

    _quiet_aiokafka()
    try:
        return asyncio.run(work)
    except KafkaIOError as exc:
        fail(str(exc))


@app.command()
def replay(
    events: Annotated[Path, typer.Option("--events", help="Event file (JSONL) to publish, in order.")],
    rate: Annotated[
        float | None,
        typer.Option("--rate", min=0.001, help="Events per second (default: as fast as possible)."),
    ] = None,
    live: Annotated[
        bool, typer.Option("--live", help="Shift timestamps so the file plays as if happening now.")
    ] = False,
    broker: BrokerOpt = None,
) -> None:
    """Publish an event file to its input topics, keyed by customer_id."""
    from ..tools.kafkaio import replay as publish
    from ..tools.simulate import read_lines

    settings = _broker_settings(broker)
    with _open_in(events) as source:
        _broker_call(settings, publish(settings, read_lines(source), rate, live))


@app.command()
def capture(
    out: Annotated[Path, typer.Option("--out", help="Event file to write ('-' for stdout).")],
    idle_seconds: Annotated[
        float, typer.Option("--idle-seconds", min=0.1, help="Stop after this long with nothing new.")
    ] = 5.0,
    broker: BrokerOpt = None,
) -> None:
    """Read the output topics from the beginning into an event file."""
    from ..safeio import Output as Out
    from ..tools.kafkaio import capture as read_outputs

    settings = _broker_settings(broker)
    _check_outputs([Out("--out", out)])
    with ExitStack() as stack:
        sink = _open_out(out, stack)
        _broker_call(settings, read_outputs(settings, sink, idle_seconds))


def _settings_from(flags: dict[str, Any]) -> Any:
    """The settings object: flags over TIERSTREAM_* variables over defaults."""
    from pydantic import ValidationError

    from ..settings import Settings

    try:
        return Settings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"])
        fail(f"setting {name} (flag or TIERSTREAM_{name.upper()}): {first['msg']}")


@app.command()
def run(
    rules: Annotated[
        str | None, typer.Option("--rules", help="Rules file or preset [env TIERSTREAM_RULES, cmb].")
    ] = None,
    broker: BrokerOpt = None,
    redis_url: Annotated[
        str | None, typer.Option("--redis", help="Redis URL [env TIERSTREAM_REDIS_URL].")
    ] = None,
    store: Annotated[
        str | None, typer.Option("--store", help="memory:// or rocksdb:// [env TIERSTREAM_STORE].")
    ] = None,
    live_clock: Annotated[
        bool | None, typer.Option("--live-clock/--no-live-clock", help="Move clocks with the wall clock.")
    ] = None,
    web_port: Annotated[
        int | None, typer.Option("--web-port", help="HTTP port [env TIERSTREAM_WEB_PORT, 6066].")
    ] = None,
    app_id: Annotated[str | None, typer.Option("--app-id", help="Consumer group / table namespace.")] = None,
    topic_prefix: Annotated[
        str | None, typer.Option("--topic-prefix", help="Prepended to every topic name.")
    ] = None,
    partitions: Annotated[
        int | None, typer.Option("--partitions", min=1, help="Input topic partitions.")
    ] = None,
    loglevel: Annotated[
        str | None, typer.Option("--loglevel", help="Worker log level [env TIERSTREAM_LOGLEVEL, WARNING].")
    ] = None,
    create_topics: Annotated[
        bool | None,
        typer.Option(
            "--create-topics",
            help="Create missing input topics with --partitions partitions (development brokers) "
            "[env TIERSTREAM_CREATE_TOPICS].",
        ),
    ] = None,
) -> None:
    """Run a Faust worker: consume the input topics, publish tiers, serve Redis and /metrics.

    It first checks the topics, creating none unless told: input topics must exist with
    TIERSTREAM_PARTITIONS partitions, and an existing changelog must have as many.
    """
    from ..broker import KafkaIOError
    from ..worker.run import TopicsRefused, run_worker

    settings = _settings_from(
        {
            "rules": rules,
            "broker_url": broker,
            "redis_url": redis_url,
            "store": store,
            "live_clock": live_clock,
            "web_port": web_port,
            "app_id": app_id,
            "topic_prefix": topic_prefix,
            "partitions": partitions,
            "loglevel": loglevel,
            "create_topics": create_topics,
        }
    )
    loaded = _rules(settings.rules)
    _quiet_aiokafka()
    _refuse_redis(settings)
    try:
        run_worker(settings, loaded, settings.loglevel.upper())
    except KafkaIOError as exc:
        fail(str(exc))
    except TopicsRefused as exc:
        for other in exc.refusals[:-1]:
            print(f"tierstream: error: {other}", file=sys.stderr)
        fail(exc.refusals[-1])


def _refuse_redis(settings: Any) -> None:
    """Fail fast, in one line, when Redis refuses our credentials. An unreachable Redis
    is fine: the worker catches up when it returns."""
    import asyncio

    from ..serving import redis_refusal

    refusal = asyncio.run(redis_refusal(settings))
    if refusal is not None:
        fail(refusal)


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
    from ..engine.timeutil import Calendar
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
    _print_explanation(doc, Calendar)


def _print_explanation(doc: dict[str, Any], _: Any) -> None:
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
    events = Table(title="outputs so far", title_justify="left")
    for col in ("effective_at", "type", "what"):
        events.add_column(col)
    for o in doc["outputs"]:
        what = (
            f"{o['from_tier']} → {o['to_tier']} ({o['matched']})"
            if o["type"] == "tier_changed"
            else f"{o['target_tier']} gap {o['gap']}"
            if o["type"] == "upgrade_opportunity"
            else f"{o['reason']} ({o['severity']})"
        )
        events.add_row(o["effective_at"], o["type"], what)
    out.print(events)


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


AppIdOpt = Annotated[
    str | None, typer.Option("--app-id", help="The deployment's app id [env TIERSTREAM_APP_ID].")
]
PartitionsOpt = Annotated[
    int | None,
    typer.Option("--partitions", min=1, help="Input topic partitions [env TIERSTREAM_PARTITIONS]."),
]
PrefixOpt = Annotated[str | None, typer.Option("--topic-prefix", help="Prepended to every topic name.")]
PartitionerOpt = Annotated[
    str | None,
    typer.Option(
        "--partitioner",
        help="The producers' partitioner: murmur2, crc32 or fnv1a [env TIERSTREAM_PARTITIONER].",
    ),
]


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


@redis_app.command("rebuild")
def redis_rebuild(
    rules: Annotated[
        str | None, typer.Option("--rules", help="Rules file or preset [env TIERSTREAM_RULES].")
    ] = None,
    broker: BrokerOpt = None,
    redis_url: Annotated[
        str | None, typer.Option("--redis", help="Redis URL [env TIERSTREAM_REDIS_URL].")
    ] = None,
    app_id: Annotated[
        str | None, typer.Option("--app-id", help="The worker's app id (names its tables).")
    ] = None,
) -> None:
    """Rewrite every customer's Redis hash and the tier counts from the tables' changelog."""
    from ..tools.rebuild import run_rebuild

    settings = _settings_from(
        {"rules": rules, "broker_url": broker, "redis_url": redis_url, "app_id": app_id}
    )
    loaded = _rules(settings.rules)
    from aiokafka.errors import KafkaError
    from redis.exceptions import RedisError

    from ..broker import KafkaIOError

    try:
        written, counts = run_rebuild(settings, loaded)
    except (OSError, KafkaError, RedisError, KafkaIOError) as exc:
        fail(
            f"cannot reach Redis or the broker ({exc}); check TIERSTREAM_REDIS_URL and TIERSTREAM_BROKER_URL"
        )
    err.print(
        f"rebuilt {written:,} customers: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()),
        highlight=False,
    )


@rules_app.command("check")
def rules_check(rules: Annotated[str, typer.Argument(help="A rules file or a preset name.")]) -> None:
    """Validate a rules file and print its ladder."""
    loaded = _rules(rules)
    table = Table(
        title=f"{loaded.scheme} — version {loaded.version} ({loaded.timezone})", title_justify="left"
    )
    table.add_column("#", justify="right")
    table.add_column("tier")
    table.add_column("label")
    table.add_column("qualifies when any of")
    for i, tier in enumerate(loaded.tiers):
        conds = "\n".join(c.text for c in tier.any_of) or "(base tier: always)"
        table.add_row(str(i), tier.id, tier.label, conds)
    out = Console()
    out.print(table)
    high = loaded.tier_ids[loaded.high_value_from] if loaded.high_value_from < len(loaded.tiers) else "none"
    out.print(
        f"downgrade after {loaded.grace_days} days below; opportunity at {loaded.opportunity_ratio}× "
        f"(cooldown {loaded.opportunity_cooldown_days} d); dormant after {loaded.dormant_after_days} d; "
        f"high value from {high}; lateness {loaded.max_lateness_days} d",
        highlight=False,
    )
    out.print("OK", style="green")


@dlq_app.command("replay")
def dlq_replay(
    events: Annotated[
        Path,
        typer.Option("--events", help="Event file of dead letters (as `tierstream capture` writes), fixed."),
    ],
    rules: Annotated[
        str | None,
        typer.Option(
            "--rules",
            help="The worker's rules file or preset, to check the records [env TIERSTREAM_RULES, cmb].",
        ),
    ] = None,
    skip_invalid: Annotated[
        bool,
        typer.Option(
            "--skip-invalid", help="Publish the records that pass; name and skip the still-bad ones."
        ),
    ] = False,
    broker: BrokerOpt = None,
) -> None:
    """Re-publish fixed dead-lettered records to their source input topics, keyed by customer_id.

    Every payload is checked first as a worker checks one record (size, JSON, schema and
    values, future timestamp): if any would be dead-lettered again, nothing is published
    and the still-bad records are named by line (unless --skip-invalid).
    """
    from ..tools.dlq import Checker, check_file, replay_dead_letters
    from ..tools.simulate import read_lines

    settings = _settings_from({"broker_url": broker, "rules": rules})
    checker = Checker(_rules(settings.rules))
    with _open_in(events) as source:
        lines: Iterable[tuple[int, bytes]]
        if source.seekable():
            first_pass: Iterable[tuple[int, bytes]] = read_lines(source)
        else:  # a pipe, e.g. --events <(jq ...): read it once
            first_pass = lines = list(read_lines(source))
        if not skip_invalid:
            count, refused = check_file(first_pass, checker, settings.topic_prefix)
            if count:
                for other in refused[1:]:
                    print(f"{events} {other.describe()}", file=sys.stderr)
                more = f" (and {count - 1:,} more)" if count > 1 else ""
                fail(
                    f"{events} {refused[0].describe()}{more}: fix the payload or drop the line "
                    "(or pass --skip-invalid); nothing was published"
                )
        if source.seekable():
            source.seek(0)
            lines = read_lines(source)
        _broker_call(settings, replay_dead_letters(settings, lines, checker))


def main(argv: list[str] | None = None) -> None:
    from .help import build, is_no_args_help

    try:
        code = build(app)(args=argv, prog_name="tierstream", standalone_mode=False)
        if code == 130:  # typer's answer to Ctrl-C (KeyboardInterrupt) when not standalone
            raise SystemExit(130)
    except UserError as exc:
        print(f"tierstream: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        print("tierstream: aborted", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as exc:
        if is_no_args_help(exc):  # `tierstream rules`: the help, not an error line
            ctx = getattr(exc, "ctx", None)
            print(ctx.get_help() if ctx is not None else exc, file=sys.stderr)
            raise SystemExit(2) from None
        # Usage errors (missing or bad options) from typer's click carry a one-line message.
        format_message = getattr(exc, "format_message", None)
        if callable(format_message) and isinstance(getattr(exc, "exit_code", None), int):
            print(f"tierstream: error: {format_message()} (see tierstream --help)", file=sys.stderr)
            raise SystemExit(2) from None
        raise
