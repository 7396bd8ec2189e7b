"""Every command in README.md runs as written, and the output it shows is what it prints.

Fenced `bash` blocks hold commands; fenced `console` blocks hold `$ command` lines each
followed by the output it shows (a line `…` elides; the shown lines must appear in
the printed output in that order). Inline `make …` commands are checked with `make -n`.
Commands run from a scratch folder that sees the repository's `.venv`, `examples` and
`tests` (so they write nothing into the repository). Commands that need a broker
(`run`, `replay`, `capture`, `bootstrap`, `export`) run last, against a closed port:
they must parse and fail in one line, no traceback, saying the broker is unreachable
or naming the folder an earlier broker command would have written (the integration
tests run them for real). Leading `NAME=value` words are environment variables.
A README command this test does not know how to run fails it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
NEEDS_BROKER = {"run", "replay", "capture", "bootstrap", "export"}
ELISION = "…"


@dataclass
class Command:
    text: str
    line: int  # in README.md, 1-based
    shown: list[str] = field(default_factory=list)


def _fences(text: str) -> list[tuple[str, int, list[str]]]:
    """(language, first line number, lines) of every fenced block."""
    out: list[tuple[str, int, list[str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = re.match(r"^```(\w*)\s*$", lines[i])
        if opening:
            j = i + 1
            while lines[j].rstrip() != "```":
                j += 1
            out.append((opening.group(1), i + 2, lines[i + 1 : j]))
            i = j
        i += 1
    return out


def _joined(lines: list[str], start: int) -> list[tuple[int, str]]:
    """Lines with `\\` continuations joined: (line number, text)."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for k, raw in enumerate(lines):
        if pending is not None:
            pending = (pending[0], pending[1] + " " + raw.strip())
        else:
            pending = (start + k, raw)
        if pending[1].endswith("\\"):
            pending = (pending[0], pending[1][:-1].rstrip())
            continue
        out.append(pending)
        pending = None
    return out


def readme_commands() -> list[Command]:
    text = README.read_text("utf-8")
    commands: list[Command] = []
    for lang, start, lines in _fences(text):
        if lang == "bash":
            for number, line in _joined(lines, start):
                code = re.sub(r"\s+#.*$", "", line).strip()
                if code and not code.startswith("#"):
                    commands.append(Command(code, number))
        elif lang == "console":
            for number, line in _joined(lines, start):
                if line.startswith("$ "):
                    commands.append(Command(line[2:].strip(), number))
                elif commands and commands[-1].line >= start:
                    commands[-1].shown.append(line.rstrip())
    for match in re.finditer(r"`(make [^`]+)`", text):
        commands.append(Command(match.group(1), text[: match.start()].count("\n") + 1))
    return commands


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("readme")
    (folder / ".venv").symlink_to(Path(sys.prefix))
    for name in ("examples", "tests"):
        (folder / name).symlink_to(ROOT / name)
    return folder


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "120", "NO_COLOR": "1", **(env or {})},
    )


def _in_order(shown: list[str], printed: list[str]) -> str | None:
    """The first shown line not found (in order) in the printed lines, else None."""
    position = 0
    for want in shown:
        if want.strip() == ELISION or not want.strip():
            continue
        try:
            position = printed.index(want, position) + 1
        except ValueError:
            return want
    return None


def test_the_readme_has_commands_of_each_kind() -> None:
    texts = [c.text for c in readme_commands()]
    assert any(t.startswith(".venv/bin/tierstream simulate") for t in texts)
    assert any(t.startswith("make bench ARGS=") for t in texts)
    assert all(c.shown for c in readme_commands() if "explain" in c.text or "whatif" in c.text)


def _split(text: str) -> tuple[dict[str, str], list[str]]:
    """Leading NAME=value words (environment) and the command."""
    words = shlex.split(text.removesuffix("&").strip())
    env: dict[str, str] = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return env, words


def test_every_readme_command_runs_as_written_and_prints_what_it_shows(scratch: Path) -> None:
    commands = readme_commands()
    later: list[Command] = []
    for command in commands:
        env, argv = _split(command.text)
        where = f"README.md:{command.line}: {command.text}"
        if argv[0] == "make":
            result = _run(["make", "-n", *argv[1:]], ROOT)
            assert result.returncode == 0, f"{where}\n{result.stderr}"
            continue
        assert argv[0] == ".venv/bin/tierstream", f"{where}: the doc test does not know how to run this"
        if argv[1] in NEEDS_BROKER:
            later.append(command)
            continue
        result = _run(argv, scratch, env)
        printed = [line.rstrip() for line in (result.stdout + result.stderr).splitlines()]
        expected_status = 2 if any("tierstream: error:" in line for line in command.shown) else 0
        assert result.returncode == expected_status, f"{where}\n{result.stderr[-3000:]}"
        missing = _in_order(command.shown, printed)
        assert missing is None, (
            f"{where}\nshown in README but not printed:\n{missing}\nprinted:\n" + "\n".join(printed)
        )
    written_by_broker = [  # the --out of a broker command, which the closed port kept from being written
        words[i + 1].rstrip("/")
        for words in (_split(c.text)[1] for c in later)
        for i, word in enumerate(words[:-1])
        if word == "--out"
    ]
    for command in later:
        env, argv = _split(command.text)
        result = _run(argv, scratch, {**env, "TIERSTREAM_BROKER_URL": "kafka://127.0.0.1:9"})
        where = f"README.md:{command.line}: {command.text}"
        reason = result.stderr.strip()
        assert result.returncode == 2 and len(reason.splitlines()) == 1, f"{where}\n{result.stderr}"
        assert "cannot reach the broker" in reason or any(w in reason for w in written_by_broker), where
        assert "Traceback" not in reason, where


def test_drift_is_caught() -> None:
    """The comparison fails on a changed figure and passes over elisions."""
    printed = ["a", "│ gold │ 15 │", "b", "c"]
    assert _in_order(["a", ELISION, "c"], printed) is None
    assert _in_order(["│ gold │ 16 │"], printed) == "│ gold │ 16 │"
    assert _in_order(["c", "a"], printed) == "a"
