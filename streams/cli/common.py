"""The typer app, its command groups and what the commands share: one-line failures, rules, files, broker calls."""

from __future__ import annotations

import sys
from collections.abc import Coroutine, Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, NoReturn, TextIO

import typer
from rich.console import Console

from ..engine.rules import Rules, RulesError, load_rules
from ..engine.timeutil import TimestampError, parse_instant

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


def _check_new_dir(path: Path, flag: str) -> None:
    """An output folder must be new (or empty): nothing a user owns is overwritten."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        fail(f"{flag} {path}: exists and is not an empty folder; give a new one (nothing is overwritten)")
    if not path.resolve().parent.is_dir():
        fail(f"{flag} {path}: its parent folder does not exist; create it first")


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
