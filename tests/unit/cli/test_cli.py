"""The command line: outputs as SPEC §8 says, and user mistakes in one line, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


EXAMPLES = FIXTURES / "examples"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierstream.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_simulate_writes_outputs_dead_letters_and_stats(tmp_path: Path) -> None:
    out, stats = tmp_path / "out.jsonl", tmp_path / "stats.json"
    result = cli(
        "simulate",
        "--rules",
        str(EXAMPLES / "bad-input.rules.yaml"),
        "--events",
        str(EXAMPLES / "bad-input.events.jsonl"),
        "--out",
        str(out),
        "--stats",
        str(stats),
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["value"]["offset"] for x in lines] == [2, 3, 4, 5, 6, 7]
    assert {x["topic"] for x in lines} == {"tierstream.dlq"}
    summary = json.loads(stats.read_text())
    assert set(summary) == {"outcomes", "dead_letters", "tiers", "migrations", "segments"}
    # no segments section: the served lifecycle and default grid, counted
    assert summary["segments"] == {"lifecycle": {"new": 1}, "grid": {"low_value/inactive": 1}}
    assert summary["outcomes"] == {"applied": 4, "duplicate": 0, "dead_letter": 6}
    assert summary["tiers"] == {"ordinary": 1, "gold": 0, "platinum": 0}
    assert "dead letter: invalid_json" in result.stderr  # the human summary


def test_simulate_to_stdout_with_until(tmp_path: Path) -> None:
    result = cli(
        "simulate",
        "--rules",
        str(EXAMPLES / "lifecycle.rules.yaml"),
        "--events",
        str(EXAMPLES / "lifecycle.events.jsonl"),
        "--until",
        "2026-04-30T00:00:00+08:00",
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 7


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["simulate", "--rules", "cmb", "--events", "/nonexistent.jsonl"],
            "/nonexistent.jsonl: cannot read the event file",
        ),
        (
            ["simulate", "--rules", "nosuch", "--events", "x"],
            "nosuch: no such rules file; give a path or a preset name",
        ),
        (
            [
                "simulate",
                "--rules",
                "cmb",
                "--events",
                str(EXAMPLES / "lifecycle.events.jsonl"),
                "--until",
                "2026-04-30",
            ],
            "--until: '2026-04-30' is not a timestamp",
        ),
        (["simulate", "--rules", "cmb"], "Missing option '--events'"),
        (["simulate", "--bogus"], "No such option: --bogus"),
        (["generate", "--customers", "0", "--days", "1", "--seed", "1"], "--customers"),
        (
            ["generate", "--customers", "1", "--days", "1", "--seed", "1", "--start", "Jan 1"],
            "--start: 'Jan 1' is not a date",
        ),
        (["rules", "check", "/nonexistent.yaml"], "no such rules file"),
    ],
)
def test_user_mistakes_are_one_line(args: list[str], message: str) -> None:
    result = cli(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr


def test_rules_check_points_at_the_line(tmp_path: Path) -> None:
    rules = tmp_path / "bank.yaml"
    rules.write_text(
        'scheme: s\nversion: "1"\ntiers:\n  - {id: base}\n  - {id: gold, any_of: ["avg_aum_30x >= 5"]}\n'
    )
    result = cli("rules", "check", str(rules))
    assert result.returncode == 2
    assert result.stderr.strip().startswith(
        f"tierstream: error: {rules}:5: tier gold: unknown metric 'avg_aum_30x'"
    )


@pytest.mark.parametrize("preset", ["cmb", "psbc", "ccb", "spdb"])
def test_rules_check_prints_the_ladder(preset: str) -> None:
    result = cli("rules", "check", preset)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
    assert "avg_aum" in result.stdout
