"""Nothing a user owns is destroyed: each rule of streams/safeio.py, then each command
that writes a file (simulate, generate, capture, whatif) refusing or failing or being
interrupted with the user's files as they were."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tierstream.safeio import Output, OutputRefused, atomic_path, atomic_text, check_outputs

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

EXAMPLES = FIXTURES / "examples"
EVENTS = EXAMPLES / "lifecycle.events.jsonl"
OLD = "the user's own data\n"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierstream.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- the rules, one by one ---------------------------------------------------------------------
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text(OLD)
    with pytest.raises(RuntimeError), atomic_text(target) as sink:
        sink.write("half of the new\n")
        raise RuntimeError("broker gone")
    assert target.read_text() == OLD
    assert leftovers(tmp_path) == []


def test_an_interrupted_write_says_so_and_leaves_the_old_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text(OLD)
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as temp:
        temp.write_text("partial")
        raise KeyboardInterrupt
    assert target.read_text() == OLD
    assert leftovers(tmp_path) == []
    assert f"interrupted: {target} left as it was" in capsys.readouterr().err


def test_a_finished_write_replaces_the_file_and_keeps_its_permissions(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text(OLD)
    target.chmod(0o640)
    with atomic_text(target) as sink:
        sink.write("new\n")
        assert target.read_text() == OLD  # nothing visible before the end
    assert target.read_text() == "new\n"
    assert target.stat().st_mode & 0o777 == 0o640
    assert leftovers(tmp_path) == []


def test_an_output_equal_to_an_input_is_refused_even_through_another_name(tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl"
    source.write_text(OLD)
    (tmp_path / "link.jsonl").symlink_to(source)
    for name in ("events.jsonl", "link.jsonl", "./events.jsonl"):
        with pytest.raises(OutputRefused, match="is also the input"):
            check_outputs([Output("--out", tmp_path / name)], [source])


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (Output("--stats", Path("/nonexistent/stats.json")), "the folder /nonexistent does not exist"),
        (Output("--out", Path("/proc/x")), "cannot write in /proc"),
        (Output("--plot", Path("w.xyz"), suffixes=(".png",)), "unknown file type '.xyz'"),
        (Output("--csv", Path(__file__), kind="dir"), "is a file, not a folder"),
        (Output("--out", Path(__file__).parent), "is a folder; give a file name"),
    ],
)
def test_unwritable_outputs_are_refused_before_any_work(output: Output, reason: str) -> None:
    with pytest.raises(OutputRefused, match=reason):
        check_outputs([output])


def test_two_flags_naming_one_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputRefused, match=r"--stats .* is also --out"):
        check_outputs([Output("--out", tmp_path / "a"), Output("--stats", tmp_path / "a")])


# --- the commands ------------------------------------------------------------------------------
def test_simulate_refuses_to_write_over_its_input(tmp_path: Path) -> None:
    events = tmp_path / "same.jsonl"
    events.write_bytes(EVENTS.read_bytes())
    result = cli("simulate", "--rules", "cmb", "--events", str(events), "--out", str(events))
    assert result.returncode == 2
    assert "is also the input" in result.stderr and "Traceback" not in result.stderr
    assert events.read_bytes() == EVENTS.read_bytes()


def test_simulate_checks_stats_before_the_run_and_keeps_the_out_file(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text(OLD)
    result = cli(
        "simulate",
        "--rules",
        "cmb",
        "--events",
        str(EVENTS),
        "--out",
        str(out),
        "--stats",
        "/nonexistent/s.json",
    )
    assert result.returncode == 2 and "--stats /nonexistent/s.json" in result.stderr
    assert out.read_text() == OLD


def test_capture_with_the_broker_down_keeps_the_file(tmp_path: Path) -> None:
    victim = tmp_path / "victim.jsonl"
    victim.write_text(OLD)
    result = cli(
        "capture",
        "--out",
        str(victim),
        "--idle-seconds",
        "0.5",
        env={"TIERSTREAM_BROKER_URL": "kafka://127.0.0.1:9"},
    )
    assert result.returncode == 2 and "cannot reach the broker" in result.stderr
    assert victim.read_text() == OLD
    assert leftovers(tmp_path) == []


def test_whatif_checks_its_outputs_before_the_run(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(OLD)
    base = ["whatif", "--events", str(EVENTS), "--rules", "cmb", "--rules", "cmb"]
    for flag, value, reason in (
        ("--csv", str(readme), "is a file, not a folder"),
        ("--plot", "/nonexistent/w.png", "does not exist"),
        ("--plot", str(tmp_path / "w.xyz"), "unknown file type"),
    ):
        result = cli(*base, flag, value)
        assert result.returncode == 2 and reason in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert readme.read_text() == OLD


@pytest.mark.parametrize("command", ["generate", "simulate"])
def test_ctrl_c_leaves_no_partial_file(tmp_path: Path, command: str) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text(OLD)
    if command == "generate":
        args = ["generate", "--customers", "200000", "--days", "60", "--seed", "1", "--out", str(out)]
    else:
        bank = tmp_path / "bank.jsonl"
        made = cli("generate", "--customers", "3000", "--days", "60", "--seed", "1", "--out", str(bank))
        assert made.returncode == 0, made.stderr
        args = ["simulate", "--rules", "cmb", "--events", str(bank), "--out", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tierstream.cli", *args], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not any(p.name.endswith(".partial") and p.stat().st_size for p in tmp_path.iterdir()):
        assert proc.poll() is None, "the command ended before it could be interrupted"
        assert time.monotonic() < deadline, "no temporary output appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert f"interrupted: {out} left as it was" in stderr and "Traceback" not in stderr
    assert out.read_text() == OLD
    assert [p for p in leftovers(tmp_path) if p.endswith(".partial")] == []
