"""Shared fixtures, registered as plugins (tests import no helpers from conftest or from
each other: helpers live in `tierstream.testing`)."""

import os

import pytest

# The pure-Python engine is the reference the suite runs (its child processes too), whether
# or not a compiled build exists; `make test` runs the engine's tests again with
# TIERSTREAM_ENGINE_BUILD=compiled. Set before anything imports tierstream, which chooses.
os.environ.setdefault("TIERSTREAM_ENGINE_BUILD", "pure")

pytest_plugins = ["tierstream.testing.fixtures"]


def pytest_report_header() -> str:
    from tierstream.enginebuild import current

    return f"engine build: {current()}"


def pytest_configure(config: pytest.Config) -> None:
    """A run asked for the compiled build refuses to pass against pure Python instead."""
    from tierstream.enginebuild import current

    if current().problem is not None:
        pytest.exit(f"tierstream: {current().problem}", returncode=2)
