"""`replay` and `capture`: event files to and from the broker."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer

from .common import (
    BrokerOpt,
    _broker_call,
    _broker_settings,
    _check_outputs,
    _open_in,
    _open_out,
    app,
)


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
