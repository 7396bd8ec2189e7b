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

from ..engine import codec
from ..engine.ledger import Customer
from ..engine.partition import PartitionEngine
from ..engine.rules import Rules
from ..engine.timeutil import wall_clock_us
from ..serving import EPOCH_KEY, TIER_COUNTS_KEY, customer_fields, redis_client, write_customers
from ..settings import Settings
from .metrics import WorkerMetrics

log = logging.getLogger("tierstream.serving")
#: customer hashes per pipeline: a flush yields to the event loop between them
FLUSH_SLICE = 500
#: a customer waiting to be written: its fields, or its encoded state (decoded when written)
Pending = dict[str, str] | tuple[PartitionEngine, bytes]


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
        #: customer id -> its fields, or (its engine, the customer) to read them from
        self.pending: dict[str, Pending] = {}
        self.pending_counts: dict[int, dict[str, int]] = {}
        self.needs_refresh = False
        self.client = redis_client(settings, socket_timeout=0.5, socket_connect_timeout=0.5)
        #: writes a slice of customers' hashes (`serving.write_customers`; tests give a stand-in)
        self.write_customers = write_customers
        self.interval = 0.2

    def note_customers(self, engine: PartitionEngine, customers: list[tuple[str, Customer]]) -> None:
        """Customers to serve: their fields are read now (~0.5 KB kept; holding the decoded
        customer until the write kept ~2.3 KB alive each once the store had dropped it)."""
        pending, rules = self.pending, self.rules
        now = engine.calendar.isoformat(wall_clock_us())
        for cid, c in customers:
            pending[cid] = customer_fields(engine, c, rules, now)
        self.metrics.redis_pending.set(len(pending))

    def note_states(self, engine: PartitionEngine, states: list[tuple[str, bytes]]) -> None:
        """Customers to serve that the store keeps encoded (`CustomerStore.spilled`): decoded
        only when written."""
        pending = self.pending
        for cid, state in states:
            pending[cid] = (engine, state)
        self.metrics.redis_pending.set(len(pending))

    def note_counts(self, partition: int, counts: dict[str, int]) -> None:
        self.pending_counts[partition] = {t: counts.get(t, 0) for t in self.rules.tier_ids}

    async def run(self) -> None:
        """The background writer (a Faust app task)."""
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    def fields(self, pending: Pending, updated_at: str | None = None) -> dict[str, str]:
        if isinstance(pending, dict):
            return pending
        engine, state = pending
        return customer_fields(engine, codec.decode(state, engine.ledger.specs), self.rules, updated_at)

    async def flush(self) -> bool:
        """Write what is pending: customer hashes in round trips of FLUSH_SLICE (a
        second's worth of a busy partition at once held the event loop), then the
        epoch and tier counts."""
        batch, counts = self.pending, self.pending_counts
        self.pending, self.pending_counts = {}, {}
        try:
            items = list(batch.items())
            for start in range(0, len(items), FLUSH_SLICE):
                now: str | None = None  # one updated_at per round trip
                hashes = []
                for cid, noted in items[start : start + FLUSH_SLICE]:
                    if now is None and not isinstance(noted, dict):
                        now = noted[0].calendar.isoformat(wall_clock_us())
                    hashes.append((cid, self.fields(noted, now)))
                await self.write_customers(self.client, hashes)
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.set(EPOCH_KEY, self.settings.app_id, nx=True)
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
            # pending again as noted (a spilled state is not kept decoded as fields: a boundary's
            # every customer, held as fields to the end of the flush, was much of its peak);
            # newer fields noted meanwhile win
            for cid, noted in batch.items():
                self.pending.setdefault(cid, noted)
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
