"""The worker's Redis cache of each customer's tier, written in pipelined batches.

Redis never slows the stream: the worker only records what changed; a background
service writes it, and when Redis is away it keeps the pending set (one entry per
customer, the latest fields) and the tier-count deltas, counts the failure, and
retries, so Redis is brought up to date when it returns. The layout (keys, fields)
is `tierstream.serving`, shared with `redis rebuild`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import redis.exceptions

from ..engine.ledger import Customer
from ..engine.partition import PartitionEngine
from ..engine.rules import Rules
from ..serving import CUSTOMER_KEY, EPOCH_KEY, TIER_COUNTS_KEY, customer_fields, redis_client
from ..settings import Settings
from .metrics import WorkerMetrics

log = logging.getLogger("tierstream.serving")


class RedisServing:
    """Writes pending customer hashes and tier counts to Redis, retrying on failure.

    Tier counts are absolute per partition (`tierstream:tier_counts:p<N>`, written by
    the partition's owner) and summed into `tierstream:tier_counts`, so they never
    drift. `tierstream:epoch` marks a Redis that holds our data: when it is missing
    (a fresh or restarted cache) the worker re-serves every customer it owns.
    """

    def __init__(self, settings: Settings, rules: Rules, metrics: WorkerMetrics) -> None:
        self.settings = settings
        self.rules = rules
        self.metrics = metrics
        self.pending: dict[str, dict[str, str]] = {}
        self.pending_counts: dict[int, dict[str, int]] = {}
        self.needs_refresh = False
        self.client = redis_client(settings, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.interval = 0.2

    def note_customers(self, engine: PartitionEngine, customers: list[tuple[str, Customer]]) -> None:
        for cid, c in customers:
            self.pending[cid] = customer_fields(engine, c, self.rules)
        self.metrics.redis_pending.set(len(self.pending))

    def note_counts(self, partition: int, counts: dict[str, int]) -> None:
        self.pending_counts[partition] = {t: counts.get(t, 0) for t in self.rules.tier_ids}

    async def run(self) -> None:
        """The background writer (a Faust app task)."""
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> bool:
        batch, counts = self.pending, self.pending_counts
        self.pending, self.pending_counts = {}, {}
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.set(EPOCH_KEY, self.settings.app_id, nx=True)
                for cid, fields in batch.items():
                    pipe.hset(CUSTOMER_KEY.format(cid), mapping=fields)  # type: ignore[arg-type]
                for partition, tiers in counts.items():
                    pipe.hset(f"{TIER_COUNTS_KEY}:p{partition}", mapping=tiers)  # type: ignore[arg-type]
                for partition in range(self.settings.partitions):
                    pipe.hgetall(f"{TIER_COUNTS_KEY}:p{partition}")
                replies = await pipe.execute()
            if replies[0]:  # the epoch was missing: this cache lost (or never had) our data
                self.needs_refresh = True
            total: Counter[str] = Counter()
            for part_counts in replies[-self.settings.partitions :]:
                for tier, n in part_counts.items():
                    total[tier.decode() if isinstance(tier, bytes) else tier] += int(n)
            if total:
                await self.client.hset(TIER_COUNTS_KEY, mapping=dict(total))  # type: ignore[arg-type]
        except (TimeoutError, redis.exceptions.RedisError, OSError) as exc:
            self.metrics.redis_failures.inc()
            for cid, fields in batch.items():  # newer fields noted meanwhile win
                self.pending.setdefault(cid, fields)
            for partition, tiers in counts.items():
                self.pending_counts.setdefault(partition, tiers)
            log.warning(
                "redis write failed (%s); %d customers pending", type(exc).__name__, len(self.pending)
            )
            self.interval = min(5.0, self.interval * 2)
            return False
        finally:
            self.metrics.redis_pending.set(len(self.pending))
        self.interval = 0.2
        return True
