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


def test_the_segment_panel_shows_the_grid_and_lifecycle_from_the_metrics(tmp_path: Path) -> None:
    demo = Demo(tmp_path)  # the cmb preset: a 3 x 3 grid with Chinese names
    demo.metrics = {
        'tierstream_customers_by_segment{segment="grid",value="高价值/中活跃"}': 7.0,
        'tierstream_customers_by_segment{segment="lifecycle",value="dormant"}': 3.0,
        'tierstream_outputs_total{type="segment_changed"}': 42.0,
    }
    demo.feeds["customer.segment-changes"].appendleft("01-02 C000001 grid ∅ → 低价值/低活跃")
    screen = render(demo, 50)
    row = next(line for line in screen.splitlines() if "高价值" in line and "7" in line)
    assert row.split("高价值")[1].split() == ["0", "7", "0", "│"]  # low, mid, high activity
    assert "dormant 3" in screen and "42" in screen and "segment changes" in screen
    assert "C000001 grid ∅ →" in screen  # a narrow feed column cuts the rest
