"""The `tierstream` command line (SPEC §8). User mistakes end in one line, never a traceback.

The commands register on `common.app` when their module is imported; the order here is
the order `tierstream --help` lists them in."""

from __future__ import annotations

import importlib
import sys

import typer

from .common import UserError, app

#: the command modules, imported (so registered) in the order `--help` lists them
COMMANDS = ("simulate", "topics", "run", "inspect", "golive", "redis", "rules", "dlq")
for _module in COMMANDS:
    importlib.import_module(f"{__package__}.{_module}")


def main(argv: list[str] | None = None) -> None:
    from ..enginebuild import current
    from .help import build, is_no_args_help

    if (problem := current().problem) is not None:  # chosen when tierstream was imported
        print(f"tierstream: error: {problem}", file=sys.stderr)
        raise SystemExit(2)
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
