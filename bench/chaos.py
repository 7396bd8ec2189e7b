"""`make chaos`: a fault matrix on the real local stack (issue 15).

Each scenario runs a generated bank (noise + late) through `tierstream run` workers
while faults are injected, then checks, against `simulate` run per partition:

* accounting: every published record ends as exactly one of applied / duplicate /
  dead-lettered: the partition markers cover every offset, the workers' counters add
  up (exactly, when no worker died), and the dead-letter topic (de-duplicated by
  source offset) holds exactly the reference's dead letters;
* outputs: the distinct output ids are the reference's, id for id;
* tables: the changelog, each customer caught up to its partition's clock, equals the
  reference engines' final state, clocks and tier counts included;
* Redis: every customer's hash and the tier counts equal what the tables serve.

    python -m bench.chaos [--quick] [--only 1,4] [--seed N]

Prints one table and exits 1 when any scenario fails. Faults the local broker cannot
take (it keeps everything in memory) are listed as gaps in docs/decisions.md.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import redis

from tierstream.contract import marker_partition
from tierstream.engine import codec
from tierstream.engine.decode import ERROR_CODES
from tierstream.engine.partition import APPLIED, DEAD_LETTER, DUPLICATE, PartitionEngine
from tierstream.engine.rules import Rules, load_rules
from tierstream.engine.timeutil import US_PER_DAY, US_PER_SECOND, wall_clock_us
from tierstream.serving import CUSTOMER_KEY, EPOCH_KEY, TIER_COUNTS_KEY, customer_fields
from tierstream.settings import Settings
from tierstream.testing import tls_proxy
from tierstream.testing.backlog import Reference, captured, make_bank, publish, reference_per_partition
from tierstream.testing.localstack import Proc, free_port, start_broker, start_redis
from tierstream.testing.localstack import _accepts as accepts
from tierstream.testing.worker import WorkerProcess
from tierstream.tools.rebuild import read_changelog
from tierstream.tools.simulate import output_line

RULES = "cmb"
PARTITIONS = 4
DLQ_TOPIC = "tierstream.dlq"


@dataclass
class Size:
    customers: int
    days: int
    #: how long a scenario may wait for one worker to catch up
    patience: float


QUICK = Size(customers=50, days=25, patience=180)
FULL = Size(customers=150, days=40, patience=420)


@dataclass
class Outcome:
    """One row of the table."""

    scenario: str
    faults: list[str] = field(default_factory=list)
    records: int = 0
    outputs_checked: int = 0
    lost: int = 0
    duplicated: int = 0
    recover_s: float = 0.0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.problems and self.lost == 0

    def recovered(self, seconds: float) -> None:
        self.recover_s = max(self.recover_s, seconds)


# --------------------------------------------------------------------------- the stack
class Lab:
    """One broker for every scenario (each has its own topic prefix, app id and
    redis-server), in a work directory kept for post-mortems."""

    def __init__(
        self, size: Size, seed: int, broker: Proc | None = None, workdir: Path | None = None
    ) -> None:
        self.size = size
        self.rng = random.Random(seed)
        self.seed = seed
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="tierstream-chaos-"))
        self.own_broker = broker is None
        self.broker: Proc = broker or start_broker(self.workdir)
        self.rules: Rules = load_rules(RULES)

    def close(self) -> None:
        if self.own_broker:
            self.broker.stop()


class Run:
    """A scenario's settings, Redis, workers and the counters they reported."""

    def __init__(self, lab: Lab, name: str, **update: Any) -> None:
        self.lab = lab
        self.name = name
        self.dir = lab.workdir / name
        self.dir.mkdir()
        self.redis: Proc = start_redis(self.dir)
        run_id = uuid4().hex[:6]
        fields: dict[str, Any] = {
            "broker_url": lab.broker.url,
            "redis_url": self.redis.url,
            # unique on a shared broker: a scenario run twice must not read the first run's topics
            "topic_prefix": f"{name}-{run_id}.",
            "app_id": f"chaos-{name}-{run_id}",
            "partitions": PARTITIONS,
            "live_clock": False,
            "web_port": free_port(),
        }
        self.settings = Settings(**{**fields, **update})
        self.workers: list[WorkerProcess] = []
        #: the last counters scraped from each worker process (a killed one keeps its last)
        self.counters: dict[int, dict[str, float]] = {}
        self.started = 0
        #: workers that exited by themselves and were replaced
        self.restarted: set[int] = set()

    def worker(self, env: dict[str, str] | None = None, **update: Any) -> WorkerProcess:
        self.started += 1
        settings = self.settings.model_copy(update={"web_port": free_port(), **update})
        w = WorkerProcess(settings, RULES, self.dir / f"worker-{self.started}.log", env=env)
        self.workers.append(w)
        return w

    def live(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.proc.poll() is None]

    def scrape(self) -> None:
        for w in self.live():
            m = w.metrics()
            if m:
                self.counters[id(w)] = m

    def kill(self, w: WorkerProcess) -> None:
        self.scrape()
        w.kill()

    def stop_workers(self) -> None:
        """Their last counters kept; the changelog quiet (a live clock writes markers every tick)."""
        self.scrape()
        for w in self.live():
            w.stop()
        for w in self.workers:
            w.sink.close()

    def stop_all(self) -> None:
        self.stop_workers()
        self.redis.stop()

    def outcome_counts(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for m in self.counters.values():
            for outcome in (APPLIED, DUPLICATE, DEAD_LETTER):
                total[outcome] += int(m.get(f'tierstream_records_total{{outcome="{outcome}"}}', 0))
        return total

    # ------------------------------------------------------------------ waiting
    def wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> float:
        """Seconds until `predicate` held; raises (with the logs' tails) on timeout."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            if predicate():
                return time.monotonic() - began
            time.sleep(0.25)
        tails = "\n".join(f"--- {w.log.name}\n{w.tail(15)}" for w in self.workers[-3:])
        raise TimeoutError(f"{self.name}: timed out after {timeout:.0f} s waiting for {what}\n{tails}")

    def caught_up(self) -> bool:
        """Every input topic-partition at lag 0 on some live worker, no Redis write pending.
        (A worker keeps the last lag of a partition taken from it: the lowest one counts;
        `settled` then confirms with the markers.)"""
        lags: dict[str, float] = {}
        pending = 0.0
        for w in self.live():
            m = w.metrics()
            if not m:
                return False
            self.counters[id(w)] = m
            for k, v in m.items():
                if k.startswith("tierstream_consumer_lag"):
                    lags[k] = min(v, lags.get(k, v))
            pending += m.get("tierstream_redis_pending_customers", 0)
        return len(lags) == 3 * self.settings.partitions and sum(lags.values()) == 0 and pending == 0

    def covered(self) -> int:
        """Records the partition markers in the changelog say are done."""
        tables = asyncio.run(read_changelog(self.settings, idle_seconds=1.0))
        markers = [json.loads(v) for k, v in tables.items() if marker_partition(k) is not None]
        return sum(o + 1 for m in markers for o in m.get("offsets", {}).values())

    def marker_clocks(self) -> dict[int, int | None]:
        tables = asyncio.run(read_changelog(self.settings, idle_seconds=0.5))
        return {
            p: json.loads(v)["clock"] for k, v in tables.items() if (p := marker_partition(k)) is not None
        }

    def wait_caught_up(self, sent: int, what: str = "lag 0") -> float:
        """Until `caught_up` and the markers cover all `sent` records."""
        began = time.monotonic()
        patience = self.lab.size.patience
        while True:
            left = patience - (time.monotonic() - began)
            self.wait(self.caught_up, left, what)
            if self.covered() >= sent:
                return time.monotonic() - began
            if time.monotonic() - began > patience:
                raise TimeoutError(f"{self.name}: {what}, but the markers cover {self.covered()} of {sent}")
            time.sleep(1)


def ready(w: WorkerProcess) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{w.port}/ready", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def ready_state(w: WorkerProcess) -> dict[str, Any] | None:
    """The /ready document (also when it answers 503), None while the web server is down."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{w.port}/ready", timeout=1) as r:
            doc: dict[str, Any] = json.loads(r.read())
            return doc
    except urllib.error.HTTPError as exc:
        try:
            body: dict[str, Any] = json.loads(exc.read())
            return body
        except ValueError:
            return None
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- the checks
def check(run: Run, sent: int, ref: Reference, out: Outcome, exact_counts: bool) -> None:
    """Compare everything the stack holds with the reference; fill `out`."""
    settings, rules = run.settings, run.lab.rules
    out.records = sent
    run.stop_workers()
    lines = captured(settings)

    # Outputs, id for id.
    expected_ids = {x["value"]["event_id"] for x in ref.outputs if x["topic"] != DLQ_TOPIC}
    got = Counter(x["value"]["event_id"] for x in lines if x["topic"] != DLQ_TOPIC)
    missing, extra = expected_ids - set(got), set(got) - expected_ids
    out.lost += len(missing)
    out.duplicated += sum(got.values()) - len(got)
    if missing:
        out.problems.append(f"{len(missing)} outputs missing")
    if extra:
        out.problems.append(f"{len(extra)} outputs the reference does not have")

    # Dead letters, de-duplicated by the source record they stand for.
    def letter(v: dict[str, Any]) -> tuple[str, str]:
        return v["error"], v["payload"]

    expected_dlq = Counter(letter(x["value"]) for x in ref.outputs + ref.keyless if x["topic"] == DLQ_TOPIC)
    by_source: dict[tuple[str, int, int], tuple[str, str]] = {}
    dlq_records = 0
    for x in lines:
        if x["topic"] == DLQ_TOPIC:
            v = x["value"]
            dlq_records += 1
            by_source[(v["source_topic"], v["partition"], v["offset"])] = letter(v)
    got_dlq = Counter(by_source.values())
    out.duplicated += dlq_records - len(by_source)
    short, surplus = expected_dlq - got_dlq, got_dlq - expected_dlq
    out.lost += sum(short.values())
    if short:
        out.problems.append(f"{sum(short.values())} dead letters missing {sorted({e for e, _ in short})}")
    if surplus:
        examples = [
            f"{v['source_topic']}[{v['partition']}]@{v['offset']}: {v['detail']}"
            for x in lines
            if x["topic"] == DLQ_TOPIC and letter(v := x["value"]) in surplus
        ][:3]
        out.problems.append(
            f"{sum(surplus.values())} unexpected dead letters {sorted({e for e, _ in surplus})}, e.g. {examples}"
        )
    out.outputs_checked = len(expected_ids) + sum(expected_dlq.values())

    # Tables, from the changelog, against the reference engines.
    tables = asyncio.run(read_changelog(settings))
    markers = {p: json.loads(v) for k, v in tables.items() if (p := marker_partition(k)) is not None}
    stored: dict[int, dict[str, Any]] = {}
    specs = PartitionEngine(rules).ledger.specs
    for key, value in tables.items():
        if marker_partition(key) is None:
            stored.setdefault(codec.partition_of(value), {})[key.decode("utf-8")] = codec.decode(value, specs)
    covered = sum(o + 1 for m in markers.values() for o in m.get("offsets", {}).values())
    if covered != sent:
        out.problems.append(f"the markers cover {covered} records of {sent} published")
        out.lost += max(0, sent - covered)
    diverged = 0
    state_examples: list[str] = []
    for p, engine in ref.engines.items():
        marker = markers.get(p)
        if marker is None:
            out.problems.append(f"partition {p}: no marker in the changelog")
            continue
        if marker["clock"] != engine.clock:
            out.problems.append(f"partition {p}: clock {marker['clock']} != reference {engine.clock}")
        counts = {t: n for t, n in marker.get("counts", {}).items() if n}
        if counts != {t: n for t, n in engine.tier_counts().items() if n}:
            out.problems.append(f"partition {p}: tier counts {counts} != reference {engine.tier_counts()}")
        mine = PartitionEngine(rules)
        mine.start_at(marker["clock"])
        mine.customers = stored.get(p, {})
        mine.sweep([])  # boundaries the worker evaluated without rewriting the state
        have, want = set(mine.customers), set(engine.customers)
        if have != want:
            out.problems.append(
                f"partition {p}: {len(want - have)} customers missing, {len(have - want)} extra"
            )
            out.lost += len(want - have)
        for cid in sorted(have & want):
            got_record, want_record = mine.record(cid), engine.record(cid)
            if got_record != want_record:
                diverged += 1
                if len(state_examples) < 3:
                    differing = {
                        f.name: (getattr(got_record, f.name), getattr(want_record, f.name))
                        for f in dataclasses.fields(got_record)
                        if getattr(got_record, f.name) != getattr(want_record, f.name)
                    }
                    state_examples.append(f"partition {p} {cid} (table, reference): {str(differing)[:1500]}")
    if diverged:
        out.problems.append(
            f"{diverged} customers' table state differs from the reference, e.g. {state_examples}"
        )

    # Redis, against the tables: a customer's stored state (what `redis rebuild` writes)
    # or the same caught up to its partition's clock (a re-serve after Redis came back
    # empty serves the worker's in-memory states, which sweeps caught up without writing).
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    fresh = PartitionEngine(rules)
    served = {k.split(":", 2)[2]: client.hgetall(k) for k in client.scan_iter(CUSTOMER_KEY.format("*"))}
    caught_up = {cid: c for part in stored.values() for cid, c in part.items()}  # caught up in place above
    tier_counts: Counter[str] = Counter()
    wrong: list[str] = []
    all_stored = {
        k.decode("utf-8"): codec.decode(v, specs) for k, v in tables.items() if marker_partition(k) is None
    }

    def fields(c: Any) -> dict[str, str]:
        return {k: v for k, v in customer_fields(fresh, c, rules).items() if k != "updated_at"}

    for cid, c in all_stored.items():
        want_fields = fields(c)
        tier_counts[want_fields["tier"]] += 1
        have_fields = {k: v for k, v in served.get(cid, {}).items() if k != "updated_at"}
        if have_fields not in (want_fields, fields(caught_up[cid])):
            diff = {k: (have_fields.get(k), v) for k, v in want_fields.items() if have_fields.get(k) != v}
            wrong.append(f"{cid} (Redis, table): {diff}")
    if wrong or len(served) != len(all_stored):
        out.problems.append(
            f"Redis: {len(wrong)} of {len(all_stored)} customers differ ({len(served)} served), e.g. {wrong[:2]}"
        )
    served_counts = {t: int(n) for t, n in client.hgetall(TIER_COUNTS_KEY).items() if int(n)}
    if served_counts != dict(+tier_counts):
        out.problems.append(f"Redis tier counts {served_counts} != tables {dict(+tier_counts)}")
    client.close()

    # The workers' counters against the file.
    counted = run.outcome_counts()
    reference = Counter(
        {
            APPLIED: sum(e.outcomes[APPLIED] for e in ref.engines.values()),
            DUPLICATE: sum(e.outcomes[DUPLICATE] for e in ref.engines.values()),
            DEAD_LETTER: sum(e.outcomes[DEAD_LETTER] for e in ref.engines.values()) + len(ref.keyless),
        }
    )
    if sum(reference.values()) != sent:
        out.problems.append(f"the reference accounts for {sum(reference.values())} records of {sent}")
    if exact_counts and counted != reference:
        out.problems.append(f"counters {dict(counted)} != reference {dict(reference)}")
    if not exact_counts and sum(counted.values()) < sent:
        out.problems.append(f"counters account for {sum(counted.values())} records of {sent}")


# --------------------------------------------------------------------------- scenarios
def bank(
    run: Run, seed: int, customers: int | None = None, days: int | None = None, name: str = "bank"
) -> Path:
    size = run.lab.size
    path = run.dir / f"{name}.jsonl"
    make_bank(path, customers or size.customers, days or size.days, seed)
    return path


def kill_point_in_recovery(w: WorkerProcess, timeout: float = 90) -> str:
    """Return as soon as /ready says partitions are assigned and the tables not yet
    recovered (polled every 20 ms); the fault's name says whether that was caught."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = ready_state(w)
        if doc is not None and doc.get("assigned", 0) > 0:
            if doc.get("recovered") is False:
                return "during table recovery"
            return "just after table recovery (too quick to catch)"
        time.sleep(0.02)
    raise TimeoutError(f"the worker was not assigned partitions in {timeout:.0f} s:\n{w.tail(15)}")


def kill_loop(lab: Lab, out: Outcome) -> None:
    """1. kill -9 at 5 random points of one backlog: mid-apply, during a commit (commits
    back to back), during table recovery, at random."""
    run = Run(lab, "kill9")
    try:
        events = bank(run, lab.seed)
        sent = publish(run.settings, events)
        ref = reference_per_partition(events, RULES, run.settings.partitions)
        points = [lab.rng.uniform(0.1, 0.6) for _ in range(3)]
        plan = [
            "mid-backlog",
            "during a commit",
            "during table recovery",
            "mid-backlog",
            "at a random instant",
        ]
        left = float(sent)  # an estimate of what is still to do (redeliveries make it rough)
        killed_at: float | None = None
        for what in plan:
            # Commits back to back (interval 0): a kill lands inside one almost surely.
            env = {"TIERSTREAM_COMMIT_INTERVAL_MS": "0"} if what == "during a commit" else None
            w = run.worker(env=env)
            if what == "during table recovery":
                what = kill_point_in_recovery(w)
            else:
                run.wait(functools.partial(ready, w), 120, "ready")
                if killed_at is not None:
                    out.recovered(time.monotonic() - killed_at)
                if what == "at a random instant":
                    time.sleep(lab.rng.uniform(0.5, 3.0))
                else:
                    target = left * points.pop()

                    def reached(w: WorkerProcess = w, target: float = target) -> bool:
                        return w.consumed() >= target or w.lag() == 0

                    run.wait(
                        reached,
                        lab.size.patience,
                        f"{target:.0f} records consumed",
                    )
            left = max(left - w.consumed(), sent * 0.2)
            run.kill(w)
            killed_at = time.monotonic()
            out.faults.append(f"kill -9 {what}")
        final = run.worker()
        run.wait(lambda: ready(final), 120, "ready after the last kill")
        assert killed_at is not None
        out.recovered(time.monotonic() - killed_at)
        run.wait_caught_up(sent)
        check(run, sent, ref, out, exact_counts=False)
    finally:
        run.stop_all()


#: how long a worker that owns lagging partitions may consume nothing before it counts as stalled
STALL_SECONDS = 60.0


def took_records(w: WorkerProcess) -> bool:
    return w.consumed() > 0 or w.lag() == 0


def slices(events: Path, n: int) -> list[Path]:
    """The event file cut into `n` consecutive files (published one by one: load over time)."""
    lines = events.read_bytes().splitlines(keepends=True)
    out = []
    for i in range(n):
        part = events.with_name(f"{events.stem}-{i}.jsonl")
        part.write_bytes(b"".join(lines[i * len(lines) // n : (i + 1) * len(lines) // n]))
        out.append(part)
    return out


def rebalance_storm(lab: Lab, out: Outcome) -> None:
    """2. Two workers; one killed and restarted 5 times while the other runs (a rebalance
    storm), then a third one joins. Six partitions, so that three workers all get some
    (Faust's co-partitioned assignor gives 4 partitions to 3 workers as 2 + 2 + 0)."""
    run = Run(lab, "storm", partitions=6)
    try:
        events = bank(run, lab.seed + 2, customers=lab.size.customers * 3)  # enough load for the storm
        ref = reference_per_partition(events, RULES, run.settings.partitions)
        sent = publish(run.settings, events)
        steady, victim = run.worker(), run.worker()
        run.wait(lambda: ready(steady) and ready(victim), 120, "both workers ready")
        for _ in range(5):
            try:
                run.wait(functools.partial(took_records, victim), STALL_SECONDS, "the victim taking records")
            except TimeoutError:
                # Ready, partitions assigned, lag above 0, nothing consumed: a stall (seen after
                # a restart amid rebalances; docs/decisions.md). Killed like the others, so
                # the rest of the storm and the checks still run.
                doc = ready_state(victim) or {}
                out.problems.append(
                    f"a restarted worker owned partitions (lag {victim.lag() or 0:.0f}) and consumed nothing "
                    f"for {STALL_SECONDS:.0f} s ({victim.log.name}; merge: {json.dumps(doc.get('merge'))})"
                )
            time.sleep(lab.rng.uniform(0.0, 2.0))
            run.kill(victim)
            killed_at = time.monotonic()
            out.faults.append("kill -9 of one of two workers, restarted")
            time.sleep(lab.rng.uniform(0.0, 3.0))
            victim = run.worker()
            run.wait(functools.partial(ready, victim), 120, "the restarted worker ready")
            out.recovered(time.monotonic() - killed_at)
        third = run.worker()
        began = time.monotonic()
        run.wait(functools.partial(ready, third), 120, "a third worker ready")
        out.recovered(time.monotonic() - began)
        out.faults.append("scale to 3")
        run.wait_caught_up(sent)
        if not third.consumed() and not any(k.startswith("tierstream_consumer_lag") for k in third.metrics()):
            out.problems.append("the third worker took no partition")
        check(run, sent, ref, out, exact_counts=False)
    finally:
        run.stop_all()


def redis_twice(lab: Lab, out: Outcome) -> None:
    """4. Redis killed under load, restarted empty, killed again during its re-serve."""
    run = Run(lab, "redis")
    try:
        events = bank(run, lab.seed + 4)
        ref = reference_per_partition(events, RULES, run.settings.partitions)
        sent = publish(run.settings, events)
        w = run.worker()
        run.wait(lambda: w.consumed() >= sent * 0.3, lab.size.patience, "a third of the backlog")
        run.redis.kill()
        out.faults.append("Redis kill -9 under load")
        run.wait(
            lambda: w.metrics().get("tierstream_redis_write_failures_total", 0) > 0,
            60,
            "a counted Redis failure",
        )
        time.sleep(1)
        run.redis.start()  # no persistence: it comes back empty
        client = redis.Redis.from_url(run.settings.redis_url, decode_responses=True)
        customers = sum(len(e.customers) for e in ref.engines.values())
        # The worker's next write finds the epoch key missing (it sets it) and re-serves
        # every customer it owns within the next ticks: kill Redis as soon as the key is back.
        deadline = time.monotonic() + 60
        while not client.exists(EPOCH_KEY):
            if time.monotonic() > deadline:
                raise TimeoutError("the worker did not write to the restarted Redis in 60 s")
            time.sleep(0.005)
        served = len(client.keys(CUSTOMER_KEY.format("*")))
        run.redis.kill()
        out.faults.append(
            f"Redis restarted empty, kill -9 again after the worker's first write, before its "
            f"re-serve ({served} of {customers} hashes in)"
        )
        time.sleep(2)
        run.redis.start()
        began = time.monotonic()
        run.wait_caught_up(sent, "lag 0")

        def served_again() -> bool:
            return bool(client.exists(EPOCH_KEY)) and len(client.keys(CUSTOMER_KEY.format("*"))) == customers

        run.wait(served_again, 60, "every customer served again")
        run.wait_caught_up(sent, "no Redis write pending")
        out.recovered(time.monotonic() - began)
        client.close()
        check(run, sent, ref, out, exact_counts=True)
    finally:
        run.stop_all()


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` read-only for the worker: a read-only bind mount when we are root (root
    writes through file modes), the write bits removed otherwise."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", "-o", "ro", str(path), str(path)], check=True)
        try:
            yield
        finally:
            subprocess.run(["umount", str(path)], check=True)
        return
    modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
    for p, mode in modes.items():
        p.chmod(mode & ~0o222)
    try:
        yield
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


def rocksdb_dir(lab: Lab, out: Outcome) -> None:
    """5. RocksDB: the data directory deleted between runs (recovery from the changelog
    alone), then made read-only (a clear error, exit non-zero, nothing lost)."""
    run = Run(lab, "rocksdb", store="rocksdb://")
    try:
        events = bank(run, lab.seed + 5)
        ref = reference_per_partition(events, RULES, run.settings.partitions)
        parts = slices(events, 3)
        data = run.dir / f"{run.settings.app_id}-data"
        sent = publish(run.settings, parts[0])
        w = run.worker()
        run.wait_caught_up(sent, "the first third applied")
        if not any(data.rglob("CURRENT")):
            out.problems.append(f"no RocksDB databases under {data}")
        run.kill(w)
        shutil.rmtree(data)
        out.faults.append("kill -9, RocksDB directory deleted")
        sent += publish(run.settings, parts[1])
        began = time.monotonic()
        w = run.worker()
        run.wait(functools.partial(ready, w), 120, "ready from the changelog alone")
        out.recovered(time.monotonic() - began)
        run.wait_caught_up(sent, "the second third applied")
        w.stop()
        sent += publish(run.settings, parts[2])
        with read_only(data):
            refused = run.worker()
            code = run_until_exit(refused, 120)
            out.faults.append("RocksDB directory read-only at start")
            said = refused.tail(5)
            if code != 2:  # a refusal: one line, exit 2 (a crash would be 1, a hang None)
                out.problems.append(f"read-only data directory: the worker exit code is {code}, not 2")
            if "Traceback" in said or ("read-only" not in said.lower() and str(data) not in said):
                out.problems.append(f"read-only data directory: no clear one-line error (log {refused.log})")
        began = time.monotonic()
        w = run.worker()
        run.wait(functools.partial(ready, w), 120, "ready after the read-only refusal")
        out.recovered(time.monotonic() - began)
        run.wait_caught_up(sent, "the last third applied")
        check(run, sent, ref, out, exact_counts=False)
    finally:
        run.stop_all()


def poison(rng: random.Random, valid: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """Bad records of `valid`'s customer (event-file lines), one of each kind, shuffled."""
    topic, v = valid["topic"], valid["value"]
    cid = v["customer_id"]
    text = json.dumps(v, separators=(",", ":"))

    def raw(value: str) -> dict[str, Any]:
        return {"topic": topic, "value": value}

    def changed(**fields: Any) -> dict[str, Any]:
        return {"topic": topic, "value": {**v, "event_id": f"poison-{rng.getrandbits(48):x}", **fields}}

    garbage = "".join(
        chr(rng.choice([rng.randrange(0, 0x80), rng.randrange(0xD800, 0xE000), rng.randrange(0x80, 0x10000)]))
        for _ in range(rng.randrange(8, 200))
    )
    ts = v["ts"]
    pad = limit - len(text.encode("utf-8"))
    records = [
        raw(f'{{"customer_id":"{cid}",' + garbage),  # random bytes (lone surrogates: not UTF-8)
        raw(garbage),  # random bytes with no customer id at all
        raw(text[:-1] + " " * pad + "}"),  # exactly at the size limit: valid, a duplicate
        raw(text[:-1] + " " * (pad + 1) + "}"),  # one byte over: oversize
        raw(f'{{"customer_id":"{cid}","deep":' + "[" * 5000 + "]" * 5000 + "}"),  # deeply nested
        raw(text[: len(text) // 2]),  # invalid_json: cut in half
        changed(customer_id=None),  # schema_violation
        changed(ts=ts[:19]),  # naive_timestamp
        changed(ts="2099-01-01T00:00:00+08:00"),  # future_timestamp
        changed(ts="2025-01-01T00:00:00+08:00"),  # too_late (once the partition has a clock)
    ]
    if "amount" in v:
        records.append(changed(amount="12.345"))
    if "balance" in v:
        records.append(changed(balance="1e9"))
    rng.shuffle(records)
    return records


def poisoned(clean: Path, rng: random.Random, limit: int) -> tuple[Path, int]:
    """`clean` with a burst of poison after every 40th record: (the new file, poison records)."""
    events = clean.with_name("poisoned.jsonl")
    inserted = 0
    with clean.open("rb") as f, events.open("w", encoding="utf-8") as dst:
        for n, line in enumerate(f):
            dst.write(line.decode("utf-8"))
            doc = json.loads(line)
            if n % 40 == 7 and isinstance(doc.get("value"), dict) and "customer_id" in doc["value"]:
                for bad in poison(rng, doc, limit):
                    dst.write(json.dumps(bad) + "\n")
                    inserted += 1
    return events, inserted


def poison_input(lab: Lab, out: Outcome) -> None:
    """6. Poison at rate (about one record in four): random bytes, records at and over the
    size limit, deeply nested JSON, every SPEC error code, interleaved with valid records of
    the same customers."""
    run = Run(lab, "poison")
    try:
        events, inserted = poisoned(bank(run, lab.seed + 6), lab.rng, lab.rules.max_record_bytes)
        ref = reference_per_partition(events, RULES, run.settings.partitions, now=wall_clock_us())
        codes = {x["value"]["error"] for x in ref.outputs + ref.keyless if x["topic"] == DLQ_TOPIC}
        if set(ERROR_CODES) - codes:
            out.problems.append(f"the poison never produced {sorted(set(ERROR_CODES) - codes)}")
        sent = publish(run.settings, events)
        w = run.worker()
        out.faults.append(f"{inserted} poison records among {sent - inserted} valid ones")
        run.wait_caught_up(sent)
        if w.proc.poll() is not None:
            out.problems.append("the worker died")
        check(run, sent, ref, out, exact_counts=True)
    finally:
        run.stop_all()


CLOCK_SHIM = Path(__file__).parent / "chaos_clock"
PROXY = Path(tls_proxy.__file__)


def clock_jump(lab: Lab, out: Outcome) -> None:
    """7. The live clock jumps days ahead while a backlog is being applied.

    The first part of the backlog is applied with the live clock off; then a worker with
    the live clock on, whose wall clock reads 10 days after the last record (bench/
    chaos_clock), sweeps every customer across those days; the rest of the backlog is
    published only once every partition's marker shows the jump, so the reference is
    exact: simulate the first part, advance each partition's clock, simulate the rest
    (late records applied or too_late, those ahead of the new wall clock future_timestamp)."""
    run = Run(lab, "clock")
    try:
        events = bank(run, lab.seed + 7)
        parts = slices(events, 5)
        first = events.with_name("first.jsonl")
        first.write_bytes(b"".join(p.read_bytes() for p in parts[:3]))
        rest = events.with_name("rest.jsonl")
        rest.write_bytes(b"".join(p.read_bytes() for p in parts[3:]))
        now = wall_clock_us()
        ref = reference_per_partition(first, RULES, run.settings.partitions, now=now)
        sent = publish(run.settings, first)
        w = run.worker()
        run.wait_caught_up(sent, "the first part applied")
        w.stop()
        before = run.marker_clocks()
        if before != {p: e.clock for p, e in ref.engines.items()}:
            out.problems.append(
                f"clocks before the jump {before} != reference {[e.clock for e in ref.engines.values()]}"
            )
        last = max(e.clock for e in ref.engines.values() if e.clock is not None)
        jumped = last + 10 * US_PER_DAY
        target = jumped - lab.rules.clock_lag_seconds * US_PER_SECOND
        for engine in ref.engines.values():
            ref.outputs += [json.loads(output_line(o)) for o in engine.advance_clock(target)]
        jumped_env = {"TIERSTREAM_CHAOS_WALL_CLOCK_US": str(jumped), "PYTHONPATH": str(CLOCK_SHIM)}
        w = run.worker(env=jumped_env, live_clock=True, sweep_interval_seconds=1.0)
        began = time.monotonic()
        run.wait(functools.partial(ready, w), 120, "ready")
        out.faults.append("live clock +10 days")

        def jumped_everywhere() -> bool:
            w.metrics()  # after recovery, /metrics opens every assigned partition (the timer moves those)
            clocks = run.marker_clocks()
            return len(clocks) == len(ref.engines) and all(
                c is not None and c >= target for c in clocks.values()
            )

        run.wait(jumped_everywhere, 120, "every partition's marker at the jumped clock")
        out.recovered(time.monotonic() - began)
        ref = reference_per_partition(rest, RULES, run.settings.partitions, now=jumped, after=ref)
        # Published between workers: records published into a running worker may be fetched
        # out of their timestamp order across topics (docs/decisions.md, chaos).
        w.stop()
        sent += publish(run.settings, rest)
        run.worker(env=jumped_env, live_clock=True, sweep_interval_seconds=1.0)
        run.wait_caught_up(sent, "the rest applied under the jumped clock")
        check(run, sent, ref, out, exact_counts=False)
    finally:
        run.stop_all()


def keep_running(run: Run, out: Outcome) -> None:
    """A worker that exited by itself is restarted (as its supervisor would), and reported.
    (Only for scenarios that never stop or kill a worker themselves.)"""
    for w in list(run.workers):
        if w.proc.poll() is not None and id(w) not in run.restarted:
            run.restarted.add(id(w))
            out.faults.append(f"worker exited ({w.proc.returncode}), restarted")
            run.worker()


def progressed(run: Run, before: float) -> bool:
    return not run.live() or run.caught_up() or sum(x.consumed() for x in run.live()) > before


def broker_pause(lab: Lab, out: Outcome) -> None:
    """3a. The broker paused (SIGSTOP) under load, then resumed."""
    run = Run(lab, "pause")
    pause = 12.0 if lab.size is QUICK else 30.0
    try:
        events = bank(run, lab.seed + 3)
        ref = reference_per_partition(events, RULES, run.settings.partitions)
        sent = publish(run.settings, events)
        w = run.worker()
        run.wait(lambda: w.consumed() >= sent * 0.3, lab.size.patience, "a third of the backlog")
        os.kill(lab.broker.pid, signal.SIGSTOP)
        try:
            time.sleep(pause)
        finally:
            os.kill(lab.broker.pid, signal.SIGCONT)
        out.faults.append(f"broker SIGSTOP {pause:.0f} s under load")
        resumed = time.monotonic()
        before = w.consumed()
        run.wait(
            lambda: any(x.consumed() > before for x in run.live()) or run.caught_up() or not run.live(),
            120,
            "progress after the pause",
        )
        keep_running(run, out)
        out.recovered(time.monotonic() - resumed)
        run.wait_caught_up(sent)
        check(run, sent, ref, out, exact_counts=False)
    finally:
        run.stop_all()


def port_closed(lab: Lab, out: Outcome) -> None:
    """3b. The broker's port closed (every connection cut, new ones refused) while commits
    are in flight (commits back to back), twice, reopened after a few seconds. The worker
    must not commit state or offsets for outputs that were not delivered."""
    workdir = lab.workdir / "portbroker"
    inner, outer = free_port(), free_port()
    broker = start_broker(workdir, port=inner, advertised_port=outer)
    proxy = Proc(
        "proxy",
        [sys.executable, str(PROXY), "--listen", str(outer), "--upstream", str(inner)],
        outer,
        f"kafka://127.0.0.1:{outer}",
        workdir / "proxy.log",
        accepts,
        workdir,
    ).start()
    run = Run(lab, "port", broker_url=proxy.url)
    try:
        events = bank(run, lab.seed + 33)
        ref = reference_per_partition(events, RULES, run.settings.partitions)
        sent = publish(run.settings, events)
        run.worker(env={"TIERSTREAM_COMMIT_INTERVAL_MS": "0"})
        for share in (0.25, 0.6):
            run.wait(functools.partial(progressed, run, sent * share), lab.size.patience, "progress")
            proxy.kill()
            time.sleep(5)
            proxy.start()
            out.faults.append("broker port closed 5 s mid-commit")
            reopened = time.monotonic()
            time.sleep(3)
            keep_running(run, out)
            out.recovered(time.monotonic() - reopened)
        run.wait_caught_up(sent)
        check(run, sent, ref, out, exact_counts=False)
    finally:
        run.stop_all()
        proxy.stop()
        broker.stop()


def run_until_exit(w: WorkerProcess, timeout: float) -> int | None:
    """The worker's exit code, or None (then it is stopped) if it still runs after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if w.proc.poll() is not None:
            w.sink.close()
            return w.proc.returncode
        w.metrics()  # after recovery, /metrics opens each partition (and its store)
        time.sleep(0.5)
    w.stop()
    return None


SCENARIOS: dict[str, tuple[str, Callable[[Lab, Outcome], None]]] = {
    "1": ("kill -9 x5 mid-backlog", kill_loop),
    "2": ("two workers, rebalance storm, scale to 3", rebalance_storm),
    "3a": ("broker paused (SIGSTOP) under load", broker_pause),
    "3b": ("broker port closed mid-commit", port_closed),
    "4": ("Redis killed, restarted empty, killed again", redis_twice),
    "5": ("RocksDB directory deleted, then read-only", rocksdb_dir),
    "6": ("poison input at rate", poison_input),
    "7": ("clock jump mid-backlog", clock_jump),
}


# --------------------------------------------------------------------------- the table
def table(outcomes: list[Outcome]) -> str:
    head = (
        "scenario",
        "faults injected",
        "records",
        "outputs checked",
        "lost",
        "dup. delivered",
        "recover (s)",
        "result",
    )
    rows = [
        (
            o.scenario,
            "; ".join(_summarise(o.faults)),
            f"{o.records:,}",
            f"{o.outputs_checked:,}",
            str(o.lost),
            str(o.duplicated),
            f"{o.recover_s:.1f}",
            "pass" if o.passed else "FAIL",
        )
        for o in outcomes
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _summarise(faults: list[str]) -> list[str]:
    counted = Counter(faults)
    return [f"{f} x{n}" if n > 1 else f for f, n in counted.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller bank: about 2 minutes per scenario")
    parser.add_argument("--only", default="", help="scenario numbers, comma-separated (default: all)")
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args(argv)
    chosen = [s for s in args.only.split(",") if s] or list(SCENARIOS)
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        parser.error(f"no scenario {', '.join(unknown)}; there are {', '.join(SCENARIOS)}")
    lab = Lab(QUICK if args.quick else FULL, args.seed)
    outcomes = []
    print(f"chaos: work directory {lab.workdir}", flush=True)
    try:
        for number in chosen:
            name, scenario = SCENARIOS[number]
            out = Outcome(f"{number}. {name}")
            began = time.monotonic()
            try:
                scenario(lab, out)
            except Exception as exc:  # a scenario that could not finish fails; the others still run
                out.problems.append(f"{type(exc).__name__}: {exc}")
            out.seconds = time.monotonic() - began
            outcomes.append(out)
            verdict = "pass" if out.passed else "FAIL: " + "; ".join(out.problems)
            print(f"{out.scenario}: {verdict} ({out.seconds:.0f} s)", flush=True)
    finally:
        lab.close()
    print()
    print(table(outcomes))
    return 0 if all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
