"""Production packaging, checked without Docker or a cluster: compose, Grafana, k8s, Dockerfile, dlq replay."""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from tierstream.engine.decode import INPUT_TOPICS
from tierstream.engine.evaluate import DLQ, OUTPUT_TOPICS, SEGMENT_CHANGES
from tierstream.engine.partition import PartitionEngine
from tierstream.engine.rules import load_rules, parse_rules
from tierstream.settings import Settings
from tierstream.tools.dlq import DlqStats, Republish, decode_payload, plan, route
from tierstream.tools.simulate import output_line
from tierstream.worker.metrics import METRIC_NAMES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"

SETTINGS_VARS = {f"TIERSTREAM_{name.upper()}" for name in Settings.model_fields}
#: Settings whose defaults are for a laptop (127.0.0.1, memory://, the cmb preset...): production sets them.
PRODUCTION_VARS = {
    f"TIERSTREAM_{name}"
    for name in ("BROKER_URL", "REDIS_URL", "RULES", "STORE", "PARTITIONS", "APP_ID", "WEB_PORT")
}
SECRET_VARS = {
    f"TIERSTREAM_{name.upper()}"
    for name, info in Settings.model_fields.items()
    if info.annotation is SecretStr
}
_TIERSTREAM_NAME = re.compile(r"\bTIERSTREAM_[A-Z0-9_]+")


def _compose() -> dict[str, Any]:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))
    assert isinstance(doc, dict)
    return doc


def _k8s_docs() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text("utf-8")):
            if doc is not None:
                docs.append((path.name, doc))
    return docs


def _k8s(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for _, doc in _k8s_docs()
        if doc.get("kind") == kind and name in (None, doc.get("metadata", {}).get("name"))
    ]
    assert len(found) == 1, f"expected one {kind} in deploy/k8s, found {len(found)}"
    return found[0]


def _container() -> dict[str, Any]:
    containers = _k8s("StatefulSet")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _container_env() -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in _container()["env"]}


# --- settings names ---------------------------------------------------------------------------
def test_production_vars_are_settings_fields() -> None:
    assert PRODUCTION_VARS <= SETTINGS_VARS
    assert {"TIERSTREAM_API_TOKEN", "TIERSTREAM_REDIS_PASSWORD", "TIERSTREAM_BROKER_SASL_PASSWORD"} <= (
        SECRET_VARS
    )


def test_every_tierstream_name_in_deploy_is_a_settings_field() -> None:
    files = [p for p in DEPLOY.rglob("*") if p.is_file()] + [ROOT / "Dockerfile", ROOT / "docs/operations.md"]
    used: dict[str, set[str]] = {}
    for path in files:
        for name in _TIERSTREAM_NAME.findall(path.read_text("utf-8")):
            used.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    assert used.keys() >= PRODUCTION_VARS
    unknown = {name: sorted(where) for name, where in used.items() if name not in SETTINGS_VARS}
    assert not unknown, f"not fields of streams/settings.py: {unknown}"


# --- compose ----------------------------------------------------------------------------------
def test_compose_services() -> None:
    services = _compose()["services"]
    assert {"kafka", "kafka-init", "redis", "worker", "prometheus", "grafana"} <= services.keys()
    for name, service in services.items():
        image = service.get("image", "")
        assert image == "" or (":" in image and not image.endswith(":latest")), f"{name}: pin the image tag"
    assert services["kafka"]["image"] == services["kafka-init"]["image"] == "apache/kafka:3.9.0"
    assert services["worker"]["build"]["context"] == ".."


def test_compose_worker_environment() -> None:
    worker = _compose()["services"]["worker"]
    env = {k: str(v) for k, v in worker["environment"].items()}
    assert env.keys() >= PRODUCTION_VARS
    assert env["TIERSTREAM_BROKER_URL"] == "kafka://kafka:9092"
    assert env["TIERSTREAM_STORE"] == "rocksdb://"
    assert worker["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    # Secrets come from an env file, never inline.
    assert not SECRET_VARS & env.keys()
    assert any(str(f.get("path", f)) == "tierstream.env" for f in worker["env_file"])
    example = (DEPLOY / "tierstream.env.example").read_text("utf-8")
    assert "TIERSTREAM_API_TOKEN=" in example
    # The settings object accepts the environment as given.
    settings = Settings(**{k.removeprefix("TIERSTREAM_").lower(): v for k, v in env.items()})
    assert settings.bootstrap_servers == ["kafka:9092"]
    # The rules file mounted into the worker is a valid ladder.
    mounts = dict(v.split(":")[:2] for v in worker["volumes"] if v.startswith("./"))
    rules_src = next(src for src, dst in mounts.items() if dst == env["TIERSTREAM_RULES"])
    assert load_rules(str(DEPLOY / rules_src)).tiers


def test_compose_topics_match_the_worker() -> None:
    services = _compose()["services"]
    script = "\n".join(services["kafka-init"]["command"])
    partitions = set(re.findall(r"--partitions (\d+)", script))
    assert partitions == {services["worker"]["environment"]["TIERSTREAM_PARTITIONS"]}
    for topic in (*INPUT_TOPICS, *OUTPUT_TOPICS, SEGMENT_CHANGES):
        assert re.search(rf"(^|\s){re.escape(topic)}(\s|;|$)", script), f"kafka-init does not create {topic}"
    assert "--if-not-exists" in script
    assert "cleanup.policy=compact" not in script


def test_prometheus_scrapes_the_worker() -> None:
    prom = yaml.safe_load((DEPLOY / "prometheus.yml").read_text("utf-8"))
    port = _compose()["services"]["worker"]["environment"]["TIERSTREAM_WEB_PORT"]
    targets = [t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert f"worker:{port}" in targets
    assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in prom["scrape_configs"])


# --- Grafana ----------------------------------------------------------------------------------
_METRIC = re.compile(r"tierstream_[a-z_]+")
_SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")


def exported(name: str) -> bool:
    """Whether the worker exports a series of this name (METRIC_NAMES plus Prometheus suffixes)."""
    if name in METRIC_NAMES:
        return True
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix) in METRIC_NAMES:
            return True
    # Counters are declared without `_total` in prometheus_client: `tierstream_records` + `_total`.
    return any(name == f"{base.removesuffix('_total')}{s}" for base in METRIC_NAMES for s in _SUFFIXES)


def _dashboard_exprs() -> list[str]:
    dash = json.loads((DEPLOY / "grafana" / "tierstream.json").read_text("utf-8"))
    return [t["expr"] for panel in dash["panels"] for t in panel.get("targets", []) if "expr" in t]


def test_exported_helper() -> None:
    assert exported("tierstream_records_total")
    assert exported("tierstream_event_to_output_seconds_bucket")
    assert not exported("tierstream_records_per_second")
    assert not exported("tierstream_lag")


def test_dashboard_uses_only_exported_metrics() -> None:
    exprs = _dashboard_exprs()
    used = {m for e in exprs for m in _METRIC.findall(e)}
    assert used, "the dashboard queries nothing"
    assert not {m for m in used if not exported(m)}, "metrics the worker does not export"
    # ... and shows every metric it does export.
    covered = {base for base in METRIC_NAMES for m in used if m.startswith(base.removesuffix("_total"))}
    assert covered == set(METRIC_NAMES)
    for q in ("0.5", "0.99"):
        assert any(f"histogram_quantile({q}," in e and "_bucket" in e for e in exprs)


def test_grafana_provisioning() -> None:
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text("utf-8"))
    assert ds["datasources"][0]["type"] == "prometheus"
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"
    boards = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/tierstream.yaml").read_text("utf-8"))
    path = boards["providers"][0]["options"]["path"]
    grafana = _compose()["services"]["grafana"]
    assert any(v.endswith(f"{path}/tierstream.json:ro") for v in grafana["volumes"])


# --- Kubernetes -------------------------------------------------------------------------------
def test_k8s_documents_have_identity() -> None:
    docs = _k8s_docs()
    kinds = {doc["kind"] for _, doc in docs}
    assert {
        "ConfigMap",
        "Secret",
        "StatefulSet",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    } <= kinds
    for name, doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), name
        assert doc.get("metadata", {}).get("name"), name


def test_k8s_schemas() -> None:
    kv = pytest.importorskip("kubernetes_validate")
    for _name, doc in _k8s_docs():
        kv.validate(doc, "1.30", strict=True)  # raises with the path of the first problem
    broken = copy.deepcopy(_k8s("StatefulSet"))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/ready"
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, "1.30", strict=True)


def test_statefulset_probes_security_resources() -> None:
    sts = _k8s("StatefulSet")
    assert sts["apiVersion"] == "apps/v1"
    assert sts["spec"]["replicas"] == 2
    pod = sts["spec"]["template"]["spec"]
    c = _container()
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 6066}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": 6066}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= c["resources"][kind].keys()
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert {"/data", "/tmp"} <= mounts.keys()
    claims = {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
    assert mounts["/data"] in claims
    assert sts["spec"]["serviceName"] == "tierstream-workers"


def test_statefulset_settings_and_rules() -> None:
    env = _container_env()
    assert env.keys() >= PRODUCTION_VARS
    assert env["TIERSTREAM_WEB_PORT"] == "6066"
    assert env["TIERSTREAM_STORE"] == "rocksdb://"
    assert not SECRET_VARS & env.keys(), "secrets belong in the Secret"
    assert [s["secretRef"]["name"] for s in _container()["envFrom"]] == [_k8s("Secret")["metadata"]["name"]]
    # TIERSTREAM_RULES is a file in the mounted ConfigMap, and that file is a valid ladder.
    cm = _k8s("ConfigMap", "tierstream-rules")
    rules_mount = next(m for m in _container()["volumeMounts"] if m["name"] == "rules")["mountPath"]
    volume = next(
        v for v in _k8s("StatefulSet")["spec"]["template"]["spec"]["volumes"] if v["name"] == "rules"
    )
    assert volume["configMap"]["name"] == cm["metadata"]["name"]
    path = Path(env["TIERSTREAM_RULES"])
    assert str(path.parent) == rules_mount
    assert parse_rules(cm["data"][path.name], "configmap").tiers


def test_secret_holds_only_secret_settings() -> None:
    secret = _k8s("Secret")
    keys = set(secret["stringData"])
    assert keys == {"TIERSTREAM_REDIS_PASSWORD", "TIERSTREAM_BROKER_SASL_PASSWORD", "TIERSTREAM_API_TOKEN"}
    assert keys <= SECRET_VARS
    assert set(secret["stringData"].values()) == {"change-me"}


def test_services_pdb_hpa() -> None:
    services = [doc for _, doc in _k8s_docs() if doc["kind"] == "Service"]
    selector = _k8s("StatefulSet")["spec"]["selector"]["matchLabels"]
    headless = [s for s in services if s["spec"].get("clusterIP") == "None"]
    assert [s["metadata"]["name"] for s in headless] == [_k8s("StatefulSet")["spec"]["serviceName"]]
    assert any(s["spec"].get("type") == "ClusterIP" for s in services)
    for s in services:
        assert s["spec"]["selector"] == selector
        assert [p["port"] for p in s["spec"]["ports"]] == [6066]
    assert _k8s("PodDisruptionBudget")["spec"]["minAvailable"] == 1
    hpa = _k8s("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    assert hpa["spec"]["maxReplicas"] <= int(_container_env()["TIERSTREAM_PARTITIONS"])
    metric = hpa["spec"]["metrics"][0]
    assert metric["type"] in ("External", "Pods")
    assert metric[metric["type"].lower()]["metric"]["name"] == "tierstream_consumer_lag"


# --- Dockerfile -------------------------------------------------------------------------------
def lint_dockerfile(text: str) -> list[str]:
    """A small lint: non-root USER, pinned base tags, a HEALTHCHECK, no remote ADD."""
    problems = []
    lines = [ln.strip() for ln in text.replace("\\\n", " ").splitlines()]
    instructions = [ln for ln in lines if ln and not ln.startswith("#")]
    for ln in instructions:
        word, _, rest = ln.partition(" ")
        word = word.upper()
        if word == "FROM":
            image = rest.split()[0]
            if ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
                problems.append(f"FROM {image}: no tag")
            elif image.endswith(":latest"):
                problems.append(f"FROM {image}: latest tag")
        if word == "ADD" and re.search(r"https?://", rest):
            problems.append("ADD from a URL: use RUN with a checksum")
    users = [ln.split(None, 1)[1].strip() for ln in instructions if ln.upper().startswith("USER ")]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("no non-root USER")
    if not any(ln.upper().startswith("HEALTHCHECK ") for ln in instructions):
        problems.append("no HEALTHCHECK")
    return problems


def test_dockerfile_lint_passes() -> None:
    text = (ROOT / "Dockerfile").read_text("utf-8")
    assert lint_dockerfile(text) == []
    assert re.search(r'^ENTRYPOINT \["tierstream"\]$', text, re.M)
    assert re.search(r'^CMD \["run"\]$', text, re.M)
    assert re.search(r"^EXPOSE 6066$", text, re.M)
    assert re.search(r"^WORKDIR /data$", text, re.M)
    assert "pip install --no-cache-dir ." in text
    assert "/health" in text and "curl" not in text


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("FROM python:latest\nUSER app\nHEALTHCHECK CMD true\n", "latest tag"),
        ("FROM python\nUSER app\nHEALTHCHECK CMD true\n", "no tag"),
        ("FROM python:3.11-slim\nHEALTHCHECK CMD true\n", "no non-root USER"),
        ("FROM python:3.11-slim\nUSER root\nHEALTHCHECK CMD true\n", "no non-root USER"),
        ("FROM python:3.11-slim\nUSER app\n", "no HEALTHCHECK"),
        ("FROM python:3.11-slim\nADD https://x.example/a.tgz /a\nUSER app\nHEALTHCHECK CMD true\n", "ADD"),
    ],
)
def test_dockerfile_lint_catches(text: str, problem: str) -> None:
    assert any(problem in p for p in lint_dockerfile(text))


# --- dlq replay -------------------------------------------------------------------------------
def _line(doc: Any) -> tuple[int, bytes]:
    return 0, json.dumps(doc, ensure_ascii=False).encode("utf-8")


def _dead(source: Any, payload: bytes, key: str | None = "C000001") -> dict[str, Any]:
    try:
        text, encoding = payload.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(payload).decode("ascii"), "base64"
    return {"source_topic": source, "key": key, "payload": text, "payload_encoding": encoding, "error": "x"}


def test_decode_payload() -> None:
    assert decode_payload({"payload": '{"a":1}', "payload_encoding": "utf-8"}) == b'{"a":1}'
    assert decode_payload({"payload": "qg==", "payload_encoding": "base64"}) == b"\xaa"
    assert decode_payload({"payload": "\ud800"}) == "\ud800".encode("utf-8", "surrogatepass")
    for bad in (
        {"payload": "!!", "payload_encoding": "base64"},
        {"payload": "x", "payload_encoding": "rot13"},
        {"payload": None},
    ):
        with pytest.raises(ValueError):
            decode_payload(bad)


def test_route_selects_input_topics_and_counts_the_rest() -> None:
    sent: list[Republish] = []
    lines = [
        _line({"topic": DLQ, "value": _dead("bank.balances", b'{"x":1}')}),
        _line(_dead("bank.profiles", b"\xff\xfe", key=None)),  # bare value, base64
        _line({"topic": DLQ, "value": _dead("tier.changes", b"{}")}),  # not an input topic
        _line({"topic": DLQ, "value": _dead(None, b"line 3")}),  # an unreadable file line
        _line({"topic": "tier.changes", "value": {"type": "tier_changed"}}),
        (7, b"not json"),
        _line({"topic": DLQ, "value": {**_dead("bank.transactions", b"{}"), "payload_encoding": "zip"}}),
    ]
    stats = route(lines, sent.append)
    assert sent == [
        Republish("bank.balances", b"C000001", b'{"x":1}'),
        Republish("bank.profiles", None, b"\xff\xfe"),
    ]
    assert (stats.other_source, stats.not_dead_letter, stats.not_json, stats.bad_payload) == (2, 1, 1, 1)
    assert stats.by_topic == {"bank.balances": 1, "bank.profiles": 1}


def test_route_applies_the_topic_prefix() -> None:
    sent: list[Republish] = []
    lines = [
        _line({"topic": f"prod.{DLQ}", "value": _dead("bank.transactions", b"{}")}),
        _line({"topic": DLQ, "value": _dead("prod.bank.balances", b"{}")}),
    ]
    route(lines, sent.append, prefix="prod.")
    assert [r.topic for r in sent] == ["prod.bank.transactions", "prod.bank.balances"]


def test_engine_dead_letters_round_trip() -> None:
    """What the engine dead-letters, written as `capture` writes it, comes back byte for byte."""
    engine = PartitionEngine(load_rules("cmb"))
    originals = [
        ("bank.balances", b'{"customer_id": "C000042", "broken', "C000042"),
        ("bank.transactions", b"\xff\x00 not utf-8", "C000043"),
    ]
    lines = []
    for topic, payload, key in originals:
        outputs = engine.process_payload(topic, payload, key=key)
        assert [o[0] for o in outputs] == [DLQ]
        lines.append((0, output_line(outputs[0]).rstrip("\n").encode("utf-8")))
    stats = DlqStats()
    assert [(r.topic, r.key, r.payload) for r in plan(lines, stats)] == [
        (t, k.encode(), p) for t, p, k in originals
    ]
    assert stats.skipped() == dict.fromkeys(stats.skipped(), 0)
