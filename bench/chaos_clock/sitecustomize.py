"""Loaded at start by a `make chaos` worker (bench/chaos.py puts this folder on its
PYTHONPATH): the wall clock the worker reads, frozen at TIERSTREAM_CHAOS_WALL_CLOCK_US,
so a scenario can move a worker's live clock days ahead without touching the machine's.
The engine takes its clock as a function; only this test harness replaces it."""

from __future__ import annotations

import os

_FROZEN = os.environ.get("TIERSTREAM_CHAOS_WALL_CLOCK_US")
if _FROZEN:
    from tierstream.engine import timeutil

    _INSTANT = int(_FROZEN)

    def _frozen_wall_clock_us() -> int:
        return _INSTANT

    timeutil.wall_clock_us = _frozen_wall_clock_us
