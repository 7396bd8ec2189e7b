"""Redis serving: a cache of each customer's tier, written in pipelined batches.

Redis never slows the stream: the worker only records what changed; a background
service writes it, and when Redis is away it keeps the pending set (one entry per
customer, the latest fields) and the tier-count deltas, counts the failure, and
retries, so Redis is brought up to date when it returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
import redis.exceptions

from .engine.evaluate import TIER_CHANGES, Output
from .engine.ledger import Customer
from .engine.money import format_fen
from .engine.partition import PartitionEngine
from .engine.rules import Rules
from .engine.timeutil import wall_clock_us
from .metrics import WorkerMetrics
from .settings import Settings

if TYPE_CHECKING:
    from .worker import Partition

log = logging.getLogger("tierstream.serving")

CUSTOMER_KEY = "tierstream:customer:{}"
TIER_COUNTS_KEY = "tierstream:tier_counts"
NEW_DAYS = 90


def customer_fields(engine: PartitionEngine, c: Customer, rules: Rules) -> dict[str, str]:
    """The hash SPEC §7 serves for one customer."""
    ev = engine.evaluator
    cal = engine.calendar
    if c.dormant_fired:
        lifecycle = "dormant"
    elif c.day - c.first_day < NEW_DAYS:
        lifecycle = "new"
    else:
        lifecycle = "active"
    fields = {
        "tier": rules.tier_ids[c.tier],
        "since": cal.isoformat(c.tier_since),
        "aum": format_fen(ev.getters["aum"](c)),
        "lifecycle": lifecycle,
        "updated_at": cal.isoformat(wall_clock_us()),
        "rules_version": rules.version,
    }
    main = rules.main_metric()
    if main in ev.getters:
        fields[main] = format_fen(ev.getters[main](c))
    return fields


class RedisServing:
    """Writes pending customer hashes and tier-count deltas to Redis, retrying on failure."""

    def __init__(self, settings: Settings, rules: Rules, metrics: WorkerMetrics) -> None:
        self.settings = settings
        self.rules = rules
        self.metrics = metrics
        self.pending: dict[str, dict[str, str]] = {}
        self.count_deltas: Counter[str] = Counter()
        password = settings.redis_password.get_secret_value() or None
        self.client = aioredis.Redis.from_url(
            settings.redis_url, password=password, socket_timeout=0.5, socket_connect_timeout=0.5,
        )
        self.interval = 0.2

    def note_customers(self, part: Partition, written: list[tuple[str, bool]]) -> None:
        engine = part.engine
        for cid, is_new in written:
            c = part.store.cache[cid]
            self.pending[cid] = customer_fields(engine, c, self.rules)
            if is_new:
                self.count_deltas[self.rules.tier_ids[0]] += 1
        self.metrics.redis_pending.set(len(self.pending))

    def note_outputs(self, outputs: list[Output]) -> None:
        for topic, _, value in outputs:
            if topic == TIER_CHANGES:
                self.count_deltas[value["from_tier"]] -= 1
                self.count_deltas[value["to_tier"]] += 1

    async def run(self) -> None:
        """The background writer (a Faust app task)."""
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> bool:
        if not self.pending and not any(self.count_deltas.values()):
            return True
        batch, deltas = self.pending, self.count_deltas
        self.pending, self.count_deltas = {}, Counter()
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for cid, fields in batch.items():
                    pipe.hset(CUSTOMER_KEY.format(cid), mapping=fields)  # type: ignore[arg-type]
                for tier, n in deltas.items():
                    if n:
                        pipe.hincrby(TIER_COUNTS_KEY, tier, n)
                await pipe.execute()
        except (TimeoutError, redis.exceptions.RedisError, OSError) as exc:
            self.metrics.redis_failures.inc()
            for cid, fields in batch.items():  # newer fields noted meanwhile win
                self.pending.setdefault(cid, fields)
            self.count_deltas.update(deltas)
            log.warning("redis write failed (%s); %d customers pending", type(exc).__name__, len(self.pending))
            self.interval = min(5.0, self.interval * 2)
            return False
        finally:
            self.metrics.redis_pending.set(len(self.pending))
        self.interval = 0.2
        return True
