"""The demo's screen, without servers: one dead-letters figure, feeds that use the screen,
and the replay's end line that names what was skipped and why."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from tierstream.testing.demo import Demo


def render(demo: Demo, height: int) -> str:
    console = Console(width=120, height=height, record=True, file=io.StringIO())
    console.print(demo.view(height), height=height)
    return console.export_text()


def test_the_feeds_fill_the_screen_and_dead_letters_show_once(tmp_path: Path) -> None:
    demo = Demo(tmp_path)
    for i in range(100):
        demo.feeds["tier.changes"].appendleft(f"10-06 00:00 C{i:06d} ↑ gold")
    short, tall = render(demo, 40), render(demo, 60)
    assert tall.count("↑ gold") - short.count("↑ gold") == 20
    assert short.count("DLQ") == 1 and short.count("dead letters") == 1


def test_the_end_of_the_replay_names_the_skipped_lines(tmp_path: Path) -> None:
    demo = Demo(tmp_path)
    demo._replay_log("replay: published 359,381 records in 240.00s (1,497/s)")
    demo._replay_log("replay: skipped 164 lines naming no input topic")
    assert demo.skipped == [
        "164 lines naming no input topic skipped (simulate dead-letters them as schema_violation)"
    ]
