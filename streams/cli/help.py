"""The command line as a person reads it: plain metavars (FILE, TIMESTAMP, not <path> or
<str>), the timestamp format on every option that takes one, whole one-line summaries
in command lists (not cut with "…"), and --version. Applied to the click command that
typer builds from streams/cli.py, so cli.py keeps only what each option means."""

from __future__ import annotations

from importlib import metadata
from typing import Any

import typer

TIMESTAMP = "RFC 3339 with a UTC offset, e.g. 2026-02-20T12:00:00+08:00"
TIMESTAMP_OPTIONS = {"--at", "--until", "--now"}
METAVARS = {
    "--rules": "RULES",
    "--events": "FILE",
    "--out": "FILE",
    "--stats": "FILE",
    "--csv": "DIR",
    "--plot": "FILE",
    "--at": "TIMESTAMP",
    "--until": "TIMESTAMP",
    "--now": "TIMESTAMP",
    "--start": "DATE",
    "--customers": "N",
    "--days": "N",
    "--seed": "N",
    "--rate": "EVENTS_PER_S",
    "--broker": "URL",
    "--redis": "URL",
    "--store": "URL",
    "--idle-seconds": "SECONDS",
    "--web-port": "PORT",
    "--partitions": "N",
    "--app-id": "ID",
    "--topic-prefix": "PREFIX",
    "--loglevel": "LEVEL",
    "--customer": "ID",
}


def version() -> str:
    try:
        return metadata.version("tierstream")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        return "unknown"


def _summary(help_text: str | None) -> str | None:
    """The docstring's first sentence, whole."""
    if not help_text:
        return None
    first = help_text.strip().split("\n\n")[0].replace("\n", " ")
    return first.split(". ")[0].rstrip(".")


def _polish(command: Any) -> None:
    """Typer vendors its own click, so parameters are told apart by kind, not class."""
    if command.short_help is None:
        command.short_help = _summary(command.help)
    for param in command.params:
        kind = getattr(param, "param_type_name", "")
        if kind == "option" and not getattr(param, "is_flag", False) and param.opts:
            flag = param.opts[0]
            param.metavar = METAVARS.get(flag, flag.lstrip("-").upper().replace("-", "_"))
            if flag in TIMESTAMP_OPTIONS and param.help and TIMESTAMP not in param.help:
                param.help = f"{param.help} ({TIMESTAMP})"
        elif kind == "argument":
            name = (param.name or "ARG").upper()
            param.metavar = name
            # typer writes a required argument as {NAME} in the usage line: plain NAME instead
            param._usage_display_name = lambda name=name: name
            param.display_type = lambda ctx: ""  # and its type as <str>: the help says what it is
    for sub in getattr(command, "commands", {}).values():
        _polish(sub)


def build(app: typer.Typer) -> Any:
    """The click command typer builds from `app`, polished."""
    command = typer.main.get_command(app)
    _polish(command)
    return command


def is_no_args_help(exc: BaseException) -> bool:
    """`tierstream rules` with no subcommand: show the help, not an error (typer itself tells
    this exception by name, its click being vendored)."""
    return type(exc).__name__ == "NoArgsIsHelpError"
