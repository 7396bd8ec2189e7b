"""The import guard: a compiled engine runs only when built from the current sources."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from tierstream import enginebuild
from tierstream.enginebuild import COMPILED, ENV_VAR, MANIFEST, MODES, choose, refusal, sha256, source_file
from tierstream.enginebuild.builder import manifest_of, up_to_date
from tierstream.settings import Settings


def fake_build(directory: Path, digests: dict[str, str] | None = None) -> Path:
    """A build's manifest and files (not loadable extensions) for COMPILED."""
    digests = digests or {m: sha256(source_file(m)) for m in COMPILED}
    manifest = manifest_of(digests, 0.0)
    for name in [manifest["runtime"], *(v["file"] for v in manifest["modules"].values())]:
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(b"not an extension module")
    (directory / MANIFEST).write_text(json.dumps(manifest), "utf-8")
    return directory


def test_a_build_of_the_current_sources_passes_the_guard(tmp_path: Path) -> None:
    assert refusal(fake_build(tmp_path), loaded=()) is None


def test_a_stale_build_is_refused_and_the_engine_stays_pure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    digests = {m: sha256(source_file(m)) for m in COMPILED}
    digests[COMPILED[0]] = "0" * 64  # compiled from another version of the source
    finders = list(sys.meta_path)
    with caplog.at_level(logging.WARNING):
        build = choose("auto", fake_build(tmp_path, digests), loaded=())
    assert not build.compiled
    assert "stale" in build.detail and f"{COMPILED[0]}.py changed" in build.detail
    assert sys.meta_path == finders  # nothing put in front of the .py files
    assert [r.getMessage() for r in caplog.records] == [
        f"tierstream: running the pure-Python engine: {build.detail}"
    ]
    assert build.problem is None  # auto: pure is a fallback, not an error


def test_compiled_required_but_stale_is_a_one_line_problem(tmp_path: Path) -> None:
    build = choose("compiled", fake_build(tmp_path, dict.fromkeys(COMPILED, "0" * 64)), loaded=())
    assert not build.compiled
    assert build.problem is not None and "make compile" in build.problem and "\n" not in build.problem


def test_a_build_that_does_not_load_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if enginebuild.RUNTIME in sys.modules:  # this process runs the compiled build: load it afresh
        monkeypatch.delitem(sys.modules, enginebuild.RUNTIME)
    finders = list(sys.meta_path)
    build = choose("auto", fake_build(tmp_path), loaded=())
    assert not build.compiled and "did not load" in build.detail
    assert sys.meta_path == finders
    assert enginebuild.RUNTIME not in sys.modules


def test_an_engine_imported_before_the_choice_is_not_mixed_with_compiled_modules(tmp_path: Path) -> None:
    why = refusal(fake_build(tmp_path), loaded={f"tierstream.engine.{COMPILED[-1]}"})
    assert why is not None and "imported before" in why


def test_a_missing_or_incomplete_build(tmp_path: Path) -> None:
    assert "no compiled build" in (refusal(tmp_path, loaded=()) or "")
    build = fake_build(tmp_path / "b")
    (build / json.loads((build / MANIFEST).read_text())["runtime"]).unlink()
    assert "incomplete" in (refusal(build, loaded=()) or "")
    (build / MANIFEST).write_text("{}", "utf-8")
    assert "unreadable" in (refusal(build, loaded=()) or "")


def test_modes(tmp_path: Path) -> None:
    assert choose("pure", fake_build(tmp_path), loaded=()).detail == f"{ENV_VAR}=pure"
    assert "expected one of auto, pure, compiled" in (choose("fast", tmp_path, loaded=()).problem or "")
    assert choose("compiled", tmp_path / "none", loaded=()).problem is not None
    assert choose("auto", tmp_path / "none", loaded=()).problem is None


def test_the_variable_is_the_settings_field() -> None:
    """Read before Settings can be imported, so named twice: kept the same here."""
    field = Settings.model_fields["engine_build"]
    assert f"{Settings.model_config['env_prefix']}ENGINE_BUILD" == ENV_VAR
    assert typing.get_args(field.annotation) == MODES
    assert field.default == "auto"


def test_the_builder_rebuilds_for_another_module_list(tmp_path: Path) -> None:
    build = fake_build(tmp_path)
    assert up_to_date(build) is None
    assert "built for the modules" in (up_to_date(build, COMPILED[:-1]) or "")


def _engine_in_a_new_process(mode: str) -> list[str]:
    code = (
        "import tierstream.engine.ledger as l, tierstream.engine.rules as r, tierstream.enginebuild as b;"
        "print(b.current().name); print(l.__file__); print(r.__file__)"
    )
    env = {**os.environ, ENV_VAR: mode}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return done.stdout.split()


@pytest.mark.skipif(
    up_to_date(enginebuild.compiled_dir()) is not None, reason="no fresh compiled build (make compile)"
)
def test_a_fresh_build_runs_compiled_unless_pure_is_asked_for() -> None:
    name, ledger, rules = _engine_in_a_new_process("auto")
    assert (name, Path(ledger).parent.parent.parent) == ("compiled", enginebuild.compiled_dir())
    assert rules.endswith("rules.py")  # the modules not compiled stay Python
    name, ledger, _ = _engine_in_a_new_process("pure")
    assert (name, Path(ledger).name) == ("pure", "ledger.py")


def test_the_command_line_refuses_a_wrong_setting_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tierstream.cli", "--version"],
        env={**os.environ, ENV_VAR: "fast"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == f"tierstream: error: {ENV_VAR}='fast': expected one of auto, pure, compiled\n"


EXAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "examples"


@pytest.mark.parametrize("mode", ["pure", "auto"])
def test_simulate_says_which_engine_ran(mode: str, tmp_path: Path) -> None:
    fresh = up_to_date(enginebuild.compiled_dir()) is None
    rules, events = EXAMPLES / "lifecycle.rules.yaml", EXAMPLES / "lifecycle.events.jsonl"
    args = ["simulate", "--rules", str(rules), "--events", str(events), "--out", str(tmp_path / "out.jsonl")]
    done = subprocess.run(
        [sys.executable, "-m", "tierstream.cli", *args],
        env={**os.environ, ENV_VAR: mode},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    expected = "engine: compiled (mypyc" if mode == "auto" and fresh else "engine: pure Python ("
    assert expected in done.stderr
