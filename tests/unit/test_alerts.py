"""The alert rules (deploy/prometheus/alerts.yml), tested the Prometheus way with promtool.

`promtool test rules` runs tests/unit/promtool/alerts.test.yml: for every alert, series
that fire it and series that do not. promtool comes from Debian's `prometheus` package
(`make tools` installs it).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = Path(__file__).resolve().parent / "promtool" / "alerts.test.yml"


def promtool() -> str:
    found = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").is_file() else None)
    if found is None:
        pytest.fail("promtool is not installed: run `make tools` (Debian's prometheus package)")
    return found


def run_promtool(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _alert_names(rules: dict[str, Any]) -> set[str]:
    return {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}


def test_rules_pass_promtool_check() -> None:
    result = run_promtool("check", "rules", ALERTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout


def test_prometheus_config_loads_the_rules() -> None:
    prom = yaml.safe_load((DEPLOY / "prometheus.yml").read_text("utf-8"))
    assert [(DEPLOY / f).resolve() for f in prom["rule_files"]] == [ALERTS]
    result = run_promtool("check", "config", DEPLOY / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_alerts_fire_and_stay_quiet_as_tested() -> None:
    result = run_promtool("test", "rules", ALERT_TESTS.name, cwd=ALERT_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    suite = yaml.safe_load(ALERT_TESTS.read_text("utf-8"))
    assert [(ALERT_TESTS.parent / f).resolve() for f in suite["rule_files"]] == [ALERTS]
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in suite["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = _alert_names(yaml.safe_load(ALERTS.read_text("utf-8")))
    assert names == fired, f"alerts with no firing case: {names - fired}"
    assert names == quiet, f"alerts with no quiet case: {names - quiet}"


@pytest.mark.parametrize(
    ("original", "weakened"),
    [
        ("sum(tierstream_consumer_lag) > 100000", "sum(tierstream_consumer_lag) > 1000000"),
        (
            "sum(rate(tierstream_records_total[10m])) > 0.01",
            "sum(rate(tierstream_records_total[10m])) > 0.001",
        ),
        ("by (le)) > 30", "by (le)) > 60"),
        ("sum(tierstream_redis_pending_customers) > 10000", "sum(tierstream_redis_pending_customers) > 50"),
        ('up{job="tierstream"} == 0', 'up{job="tierstream"} == 1'),
    ],
)
def test_the_tests_catch_a_changed_threshold(tmp_path: Path, original: str, weakened: str) -> None:
    text = ALERTS.read_text("utf-8")
    assert original in text
    (tmp_path / "alerts.yml").write_text(text.replace(original, weakened), "utf-8")
    suite = yaml.safe_load(ALERT_TESTS.read_text("utf-8"))
    suite["rule_files"] = ["alerts.yml"]
    (tmp_path / "alerts.test.yml").write_text(yaml.safe_dump(suite), "utf-8")
    result = run_promtool("test", "rules", "alerts.test.yml", cwd=tmp_path)
    assert result.returncode != 0, "promtool's tests pass on a changed rule: they test nothing"
    assert "FAILED" in result.stdout + result.stderr


def test_compose_mounts_the_rules_where_the_config_looks() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))
    mounts = dict(
        v.split(":")[:2] for v in compose["services"]["prometheus"]["volumes"] if v.startswith("./")
    )
    config_dir = Path(mounts["./prometheus.yml"]).parent
    prom = yaml.safe_load((DEPLOY / "prometheus.yml").read_text("utf-8"))
    assert {str(config_dir / f) for f in prom["rule_files"]} == {mounts["./prometheus/alerts.yml"]}


def test_k8s_configmap_holds_the_same_rules() -> None:
    doc = yaml.safe_load((DEPLOY / "k8s" / "prometheus-rules.yaml").read_text("utf-8"))
    assert doc["kind"] == "ConfigMap"
    assert doc["data"]["alerts.yml"] == ALERTS.read_text("utf-8"), (
        "deploy/k8s/prometheus-rules.yaml differs from deploy/prometheus/alerts.yml: copy the file into it"
    )


def test_operations_doc_links_the_rules_instead_of_copying_them() -> None:
    text = (ROOT / "docs" / "operations.md").read_text("utf-8")
    assert "deploy/prometheus/alerts.yml" in text
    for name in _alert_names(yaml.safe_load(ALERTS.read_text("utf-8"))):
        assert f"alert: {name}" not in text
