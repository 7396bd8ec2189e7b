"""`make demo` stops cleanly on Ctrl-C: the terminal's SIGINT goes to the whole foreground
process group (make and the demo), as a terminal sends it; within 5 s every process the
demo started is gone and no log holds a traceback."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
#: The issue's promise: the demo has stopped this long after Ctrl-C.
STOP_BUDGET_SECONDS = 5.0
#: Generous bounds for start-up on a busy 2-core machine (not what is being tested).
START_BOUND_SECONDS = 120.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _applied(web: str) -> float:
    try:
        with urllib.request.urlopen(f"{web}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    found = re.search(r'^tierstream_records_total\{[^}]*outcome="applied"[^}]*\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_ctrl_c_stops_the_demo_in_order_quietly_and_in_time(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    console = (tmp_path / "make-demo.out").open("wb")
    demo = subprocess.Popen(
        ["make", "--no-print-directory", "demo", f"ARGS=--workdir {workdir} --customers 200 --days 20"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=console,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a process group of its own, like a terminal's foreground job
    )
    try:
        deadline = time.monotonic() + START_BOUND_SECONDS
        state_file = workdir / "demo.json"
        while not state_file.exists():
            assert demo.poll() is None, (tmp_path / "make-demo.out").read_text()
            assert time.monotonic() < deadline, "the demo never started its worker"
            time.sleep(0.2)
        state = json.loads(state_file.read_text())
        while _applied(state["web"]) == 0:  # stop it mid-replay, with everything busy
            assert demo.poll() is None, (tmp_path / "make-demo.out").read_text()
            assert time.monotonic() < deadline, "the worker never applied a record"
            time.sleep(0.2)
        os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.wait(STOP_BUDGET_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"make demo still running {STOP_BUDGET_SECONDS:.0f} s after Ctrl-C")
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        console.close()
    out = (tmp_path / "make-demo.out").read_text(errors="replace")
    assert "stopped worker, redis-server, broker in" in out, out[-2000:]
    assert [name for name, pid in state["pids"].items() if _alive(pid)] == []
    table = [p for p in Path("/proc").iterdir() if p.name.isdigit()]
    holding = []
    for entry in table:
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(workdir) in cmdline:
            holding.append(cmdline)
    assert holding == []
    logs = {p.name: p.read_text(errors="replace") for p in workdir.glob("*.log")}
    assert set(logs) >= {"worker.log"} and len(logs) == 3
    for name, text in {**logs, "make demo": out}.items():
        assert "Traceback" not in text, f"{name}:\n{text[-3000:]}"
        assert "is overlapping" not in text, name
    assert not list(workdir.glob("*.jsonl"))  # no bank file left behind
