"""The Grafana dashboard on a real Prometheus: every panel's query returns data, and the
alert rules evaluate without errors.

Prometheus (Debian's `prometheus` package, `make tools`) scrapes a worker every second
from before a backlog is published until after it is applied; each panel's PromQL, with Grafana's variables
substituted, goes to Prometheus' HTTP query API over the run. A panel with no finite
value, or whose legend names a label its series lack, is a broken panel.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tierstream.settings import Settings
from tierstream.testing.backlog import make_bank
from tierstream.testing.localstack import HOST, Proc, free_port
from tierstream.testing.worker import WorkerProcess
from tierstream.tools.kafkaio import replay
from tierstream.tools.simulate import read_lines

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "tierstream.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
SCRAPE_SECONDS = 1
#: Grafana's built-in variables, as Grafana would resolve them for a short range at this scrape interval.
GRAFANA_VARIABLES = {
    "$__rate_interval": f"{4 * SCRAPE_SECONDS}s",
    "$__interval": f"{SCRAPE_SECONDS}s",
    "$__range": "5m",
}


def prometheus_binary() -> str:
    found = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(found).is_file():
        pytest.fail("prometheus is not installed: run `make tools` (Debian's prometheus package)")
    return found


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/-/ready", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def start_prometheus(workdir: Path, target_port: int) -> Proc:
    """A throwaway Prometheus scraping one worker every second, storing under workdir."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {
                    "scrape_interval": f"{SCRAPE_SECONDS}s",
                    "evaluation_interval": f"{SCRAPE_SECONDS}s",
                },
                "rule_files": [str(ALERTS)],
                "scrape_configs": [
                    {"job_name": "tierstream", "static_configs": [{"targets": [f"{HOST}:{target_port}"]}]}
                ],
            }
        ),
        "utf-8",
    )
    argv = [
        prometheus_binary(),
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address={HOST}:{port}",
    ]
    proc = Proc(
        "prometheus", argv, port, f"http://{HOST}:{port}", workdir / "prometheus.log", _ready, workdir
    )
    return proc.start(timeout=30)


def query_range(prometheus: Proc, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": SCRAPE_SECONDS})
    with urllib.request.urlopen(f"{prometheus.url}/api/v1/query_range?{params}", timeout=10) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def panels() -> list[tuple[str, str, str]]:
    """(panel title, PromQL with Grafana's variables substituted, legend format) of every target."""
    dash = json.loads(DASHBOARD.read_text("utf-8"))
    found = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
                expr = expr.replace(name, value).replace("${" + name[1:] + "}", value)
            assert "$" not in expr, f"{panel['title']}: a variable this test does not substitute: {expr}"
            found.append((panel["title"], expr, target.get("legendFormat", "")))
    return found


def finite_points(series: list[dict[str, Any]]) -> int:
    return sum(1 for s in series for _, v in s["values"] if math.isfinite(float(v)))


def scraped(prometheus: Proc, since: float) -> int:
    """How many scrapes of the worker succeeded since `since` (raw samples of `up`, not steps)."""
    params = urllib.parse.urlencode({"query": "up[10m]"})
    with urllib.request.urlopen(f"{prometheus.url}/api/v1/query?{params}", timeout=10) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return sum(
        1 for s in body["data"]["result"] for t, v in s["values"] if float(t) >= since and float(v) == 1
    )


def test_every_panel_returns_data(settings: Settings, tmp_path: Path) -> None:
    events = tmp_path / "bank.jsonl"
    make_bank(events, customers=60, days=40, seed=11)
    prometheus = start_prometheus(tmp_path / "prometheus", settings.web_port)
    began = time.time()
    worker = WorkerProcess(settings, "cmb", tmp_path / "worker.log")
    try:
        # The backlog goes in once Prometheus scrapes the worker: a worker can apply this
        # bank in under a second, before Prometheus' first scrape (~5 s after it starts),
        # and a rate() needs samples from before and after.
        worker.wait_for(lambda: scraped(prometheus, began) >= 1, 60, "Prometheus to scrape the worker")
        with events.open("rb") as f:
            sent = asyncio.run(replay(settings, read_lines(f), None, False))
        worker.wait_for(lambda: worker.consumed() >= sent, 180, f"{sent} records consumed")
        worker.wait_for(lambda: worker.lag() == 0, 30, "lag 0 in /metrics")
        done = time.time()
        worker.wait_for(
            lambda: scraped(prometheus, done) >= 2, 30, "Prometheus to scrape the finished backlog twice"
        )
        end = time.time()
        broken = []
        checked = 0
        for title, expr, legend in panels():
            series = query_range(prometheus, expr, began, end)
            if finite_points(series) == 0:
                broken.append(f"{title}: {expr} returned no data ({len(series)} series, none finite)")
                continue
            for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", legend):
                lacking = [s["metric"] for s in series if label not in s["metric"]]
                if lacking:
                    broken.append(f"{title}: legend {legend!r} but series without {label}: {lacking[:3]}")
            checked += 1
        assert not broken, "broken panels:\n" + "\n".join(broken)
        assert checked >= 8
        # The alert rules evaluate on the real series without errors.
        with urllib.request.urlopen(f"{prometheus.url}/api/v1/rules", timeout=10) as r:
            rules = [rule for group in json.load(r)["data"]["groups"] for rule in group["rules"]]
        written = [
            rule["alert"]
            for group in yaml.safe_load(ALERTS.read_text("utf-8"))["groups"]
            for rule in group["rules"]
        ]
        assert sorted(rule["name"] for rule in rules) == sorted(written) and len(written) >= 6
        assert {rule["name"]: rule["health"] for rule in rules} == {rule["name"]: "ok" for rule in rules}
        # The check tells a broken query from a working one: a misspelt metric has no data.
        assert (
            finite_points(query_range(prometheus, "sum(rate(tierstream_record_total[1m]))", began, end)) == 0
        )
    finally:
        worker.stop()
        prometheus.stop()
