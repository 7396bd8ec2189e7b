"""The command line: `tierstream` (a typer app), one module per command group."""

from .app import main
from .common import app

__all__ = ["app", "main"]
