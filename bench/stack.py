"""The local stack for the worker benchmarks: Tansu and redis-server from the wheels,
topics created, and `tierstream run` workers as child processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from tierstream.broker import ensure_topics
from tierstream.contract import changelog_topic
from tierstream.settings import Settings
from tierstream.testing import prometheus
from tierstream.testing.localstack import Proc, free_port, start_broker, start_redis
from tierstream.testing.worker import spawn, worker_env


def report(name: str, result: dict[str, object]) -> None:
    """Print one part's figures and keep them in bench/out/<name>.json."""
    for key, value in result.items():
        shown = f"{value:,}" if isinstance(value, int | float) else str(value)
        print(f"{key:<28}{shown:>14}")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")


class LocalStack:
    """Broker and Redis in a temporary directory, for one benchmark run."""

    def __init__(self, prefix: str = "bench.", partitions: int = 4) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="tierstream-bench-"))
        self.prefix = prefix
        self.partitions = partitions
        self.broker: Proc | None = None
        self.redis: Proc | None = None

    def __enter__(self) -> LocalStack:
        self.broker, self.redis = start_broker(self.workdir), start_redis(self.workdir)
        self.settings = Settings(
            broker_url=self.broker.url,
            redis_url=self.redis.url,
            topic_prefix=self.prefix,
            app_id=f"{self.prefix}worker".replace(".", "-"),
            partitions=self.partitions,
            live_clock=False,
            web_port=free_port(),
        )
        names = self.settings.input_topics + self.settings.output_topics
        asyncio.run(ensure_topics(self.settings, names, self.partitions))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.redis is not None:
            self.redis.stop()
        if self.broker is not None:
            self.broker.stop()


class WorkerProcess:
    """`tierstream run` (CMB rules, memory store) in a child process."""

    def __init__(self, stack: LocalStack, app_id: str, live_clock: bool = False, **env: str) -> None:
        settings = stack.settings
        self.port = free_port()
        self.app_id = app_id
        own = settings.model_copy(update={"app_id": app_id, "web_port": self.port, "live_clock": live_clock})
        self.env = {**worker_env(own, "cmb"), **env}
        self.log = stack.workdir / f"{app_id}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> WorkerProcess:
        with self.log.open("wb") as sink:
            self.proc = spawn(self.env, sink, self.log.parent)
        self.wait_ready(120)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise SystemExit(f"the worker exited; see {self.log}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"the worker was not ready in {timeout:.0f} s; see {self.log}")

    def consumed(self) -> float:
        return prometheus.total(
            prometheus.samples(prometheus.scrape(self.port, 5.0)), "tierstream_records_total"
        )

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def changelog_size(settings: Settings, app_id: str) -> tuple[int, int]:
    """(records, key + value bytes) in the worker's table changelog, read end to end."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def read() -> tuple[int, int]:
        topic = changelog_topic(app_id)
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None)
        await consumer.start()
        try:
            parts = [TopicPartition(topic, p) for p in range(settings.partitions)]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            # Read until quiet: the local broker's ListOffsets reports the start of the
            # last batch, not the end, so end offsets cannot say when we are done.
            records = size = 0
            idle = 0
            while idle < 4:
                batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
                idle = 0 if batch else idle + 1
                for rs in batch.values():
                    for r in rs:
                        records += 1
                        size += len(r.key or b"") + len(r.value or b"")
            return records, size
        finally:
            await consumer.stop()

    return asyncio.run(read())
