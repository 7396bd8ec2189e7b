"""The worked examples of SPEC.md (../shared/examples, copied into tests/fixtures)."""

import json
from pathlib import Path

import pytest

from tierstream.engine.rules import load_rules
from tierstream.testing.book import run, strip_wall

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

SHARED = Path(__file__).resolve().parents[4] / "shared" / "examples"
UNTIL = {"lifecycle": "2026-04-30T00:00:00+08:00", "bad-input": None}


def example_dirs() -> list[Path]:
    return [FIXTURES / "examples"] + ([SHARED] if SHARED.is_dir() else [])


@pytest.mark.parametrize("folder", example_dirs(), ids=lambda p: p.parent.name)
@pytest.mark.parametrize("name", sorted(UNTIL))
def test_example_outputs_and_stats(folder: Path, name: str) -> None:
    rules = load_rules(str(folder / f"{name}.rules.yaml"))
    lines = (folder / f"{name}.events.jsonl").read_bytes().splitlines()
    outputs, engine = run(rules, [ln for ln in lines], until=UNTIL[name])
    expected = [json.loads(x) for x in (folder / f"{name}.expected.jsonl").read_text().splitlines() if x]
    # The expected files list the three output topics; dead letters are checked by count.
    got = [{"topic": t, "value": v} for t, v in outputs if t != "tierstream.dlq"]
    assert got == [{"topic": e["topic"], "value": strip_wall(e["value"])} for e in expected]
    stats = json.loads((folder / f"{name}.expected-stats.json").read_text())
    assert dict(engine.outcomes) == stats["outcomes"]
    assert dict(engine.dead_letters) == stats["dead_letters"]
    assert sum(1 for t, _ in outputs if t == "tierstream.dlq") == stats["outcomes"]["dead_letter"]
