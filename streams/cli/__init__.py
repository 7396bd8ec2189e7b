"""The command line: `tierstream` (a typer app), one module per command group."""

from .app import app, main

__all__ = ["app", "main"]
