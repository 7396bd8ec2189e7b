"""`tierstream dlq ...`: the dead-letter topic."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from .common import (
    BrokerOpt,
    _broker_call,
    _open_in,
    _rules,
    _settings_from,
    dlq_app,
    fail,
)


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
