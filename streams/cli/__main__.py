"""`python -m tierstream.cli`: the `tierstream` command."""

from .app import main

main()
