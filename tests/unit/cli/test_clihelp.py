"""--help reads as prose: plain metavars, timestamp formats, whole summaries, --version."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

COMMANDS = [[], ["simulate"], ["generate"], ["replay"], ["capture"], ["run"], ["explain"], ["whatif"]]
COMMANDS += [["rules", "check"], ["redis", "rebuild"], ["dlq", "replay"]]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierstream.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "100"},
    )


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "tierstream")
def test_help_reads_like_prose(command: list[str]) -> None:
    result = cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert not re.search(r"<[a-z\[\]]+>", text), text  # no <str>, <path>, <list[str]>
    assert not re.search(r"\{[A-Za-z_]+\}", text), text  # no {rules}
    assert "..." not in text.replace("COMMAND [ARGS]...", ""), text  # summaries are whole
    for flag in ("--at", "--until", "--now"):
        if f"  {flag} " in text:
            assert "2026-02-20T12:00:00+08:00" in text, text


def test_version() -> None:
    result = cli("--version")
    assert result.returncode == 0 and re.fullmatch(r"tierstream \S+\n", result.stdout)


def test_a_group_without_a_command_shows_its_help_not_an_error() -> None:
    result = cli("rules")
    assert "Usage: tierstream rules" in result.stderr and "error" not in result.stderr
