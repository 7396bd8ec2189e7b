"""Event files that are not what they seem: a huge line, a compressed, binary or empty file."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tierstream.tools.eventfile import OverlongLine, check_event_file, read_lines

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

EVENTS = FIXTURES / "examples" / "lifecycle.events.jsonl"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierstream.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_a_line_over_the_limit_is_never_held_whole() -> None:
    huge = b'{"topic":"bank.balances","value":{"customer_id":"C9","note":"' + b"x" * 5000 + b'"}}'
    lines = list(read_lines(io.BytesIO(b"first\n" + huge + b"\n\nlast\r\n"), max_line=1000))
    assert [n for n, _ in lines] == [0, 1, 3]
    (_, over) = lines[1]
    assert isinstance(over, OverlongLine) and len(over) == 1000 and over.size == len(huge)
    assert [lines[0][1], lines[2][1]] == [b"first", b"last"]


def test_simulate_dead_letters_a_huge_line_with_a_bounded_payload(tmp_path: Path) -> None:
    events = tmp_path / "huge.jsonl"
    huge = b'{"topic":"bank.balances","value":{"customer_id":"C9","note":"' + b"x" * 17_000_000 + b'"}}\n'
    events.write_bytes(huge + EVENTS.read_bytes())
    out = tmp_path / "out.jsonl"
    result = cli("simulate", "--rules", "cmb", "--events", str(events), "--out", str(out))
    assert result.returncode == 0, result.stderr
    dead = json.loads(out.read_text().splitlines()[0])["value"]
    assert (dead["error"], dead["key"], dead["source_topic"], dead["offset"]) == (
        "oversize",
        "C9",
        "bank.balances",
        0,
    )
    assert len(dead["payload"]) == 4096 and "first 4,096 bytes" in dead["detail"]
    assert out.stat().st_size < 10_000 + EVENTS.stat().st_size * 4  # the line is not copied whole


@pytest.mark.parametrize(
    ("content", "kind", "words"),
    [
        (gzip.compress(b'{"topic": "bank.balances"}\n'), "error", "gzip-compressed: decompress it first"),
        (b"\x7fELF\x00\x01binary", "error", "is a binary file, not JSON lines"),
        (b"", "warning", "holds no events"),
        (b"\n\n  \n", "warning", "holds no events"),
    ],
)
def test_files_that_are_not_event_files_are_named(content: bytes, kind: str, words: str) -> None:
    stream = io.BufferedReader(io.BytesIO(content))  # type: ignore[arg-type]
    problem = check_event_file(stream, "f.jsonl")
    assert problem is not None and problem[0] == kind and words in problem[1]
    assert stream.read() == content  # nothing consumed


def test_a_real_event_file_passes() -> None:
    with EVENTS.open("rb") as f:
        assert check_event_file(f, EVENTS) is None


def test_simulate_refuses_a_gzip_file_and_warns_on_an_empty_or_non_json_one(tmp_path: Path) -> None:
    packed = tmp_path / "bank.jsonl.gz"
    packed.write_bytes(gzip.compress(EVENTS.read_bytes()))
    result = cli("simulate", "--rules", "cmb", "--events", str(packed))
    assert result.returncode == 2 and "gzip-compressed" in result.stderr and "Traceback" not in result.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    result = cli("simulate", "--rules", "cmb", "--events", str(empty))
    assert result.returncode == 0 and "warning: " in result.stderr and "holds no events" in result.stderr
    text = tmp_path / "notes.txt"
    text.write_text("dear diary\nnothing here is json\n")
    result = cli("simulate", "--rules", "cmb", "--events", str(text))
    assert result.returncode == 0 and "none of the 2 lines" in result.stderr


def test_progress_is_shown_only_on_a_terminal_and_changes_no_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tierstream.tools.eventfile import progress_lines

    with EVENTS.open("rb") as f:
        plain = list(read_lines(f))
    with EVENTS.open("rb") as f:
        lines = read_lines(f)
        assert progress_lines(lines, f, "simulate") is lines  # not a terminal: untouched
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with EVENTS.open("rb") as f:
        shown = progress_lines(read_lines(f), f, "simulate")
        assert list(shown) == plain
