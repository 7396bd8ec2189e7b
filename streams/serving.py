"""Redis serving: a cache of each customer's tier, written in pipelined batches.

Redis never slows the stream: the worker only records what changed; a background
service writes it, and when Redis is away it keeps the pending set (one entry per
customer, the latest fields) and the tier-count deltas, counts the failure, and
retries, so Redis is brought up to date when it returns.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import Counter
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from .engine.ledger import Customer
from .engine.money import format_fen
from .engine.partition import PartitionEngine
from .engine.rules import Rules
from .engine.timeutil import wall_clock_us
from .metrics import WorkerMetrics
from .settings import Settings

log = logging.getLogger("tierstream.serving")

CUSTOMER_KEY = "tierstream:customer:{}"
TIER_COUNTS_KEY = "tierstream:tier_counts"
EPOCH_KEY = "tierstream:epoch"


def customer_fields(engine: PartitionEngine, c: Customer, rules: Rules) -> dict[str, str]:
    """The hash SPEC §7 serves for one customer."""
    ev = engine.evaluator
    cal = engine.calendar
    fields = {
        "tier": rules.tier_ids[c.tier],
        "since": cal.isoformat(c.tier_since),
        "aum": format_fen(ev.getters["aum"](c)),
        **ev.serving_segments(c),
        "updated_at": cal.isoformat(wall_clock_us()),
        "rules_version": rules.version,
    }
    main = rules.main_metric()
    if main in ev.getters:
        fields[main] = format_fen(ev.getters[main](c))
    return fields


def redis_client(settings: Settings, **options: Any) -> aioredis.Redis:
    """A Redis client with the password and, for a rediss:// URL, the CA file of the settings."""
    if settings.redis_url.startswith("rediss://") and settings.redis_ca_file:
        options["ssl_ca_certs"] = settings.redis_ca_file
    client: aioredis.Redis = aioredis.Redis.from_url(
        settings.redis_url, password=settings.redis_password.get_secret_value() or None, **options
    )
    return client


async def redis_refusal(settings: Settings) -> str | None:
    """Why Redis refuses us for good (a wrong password, a failed TLS handshake), or None.

    An unreachable Redis is not a refusal: the worker runs on and catches up when it
    returns. Wrong credentials would never heal, so the worker must not start with them.
    """
    client = redis_client(settings, socket_timeout=2, socket_connect_timeout=2)
    try:
        await client.ping()
    except redis.exceptions.AuthenticationError as exc:
        return (
            f"Redis at {url_without_password(settings.redis_url)} refused our credentials ({exc}); "
            "set TIERSTREAM_REDIS_PASSWORD to its requirepass (or ACL) password"
        )
    except redis.exceptions.ResponseError as exc:
        if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
            return f"Redis refused us ({exc}); set TIERSTREAM_REDIS_PASSWORD"
        return None
    except redis.exceptions.ConnectionError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ssl.SSLError) or "SSL" in str(exc) or "certificate" in str(exc):
            return (
                f"the TLS handshake with Redis at {url_without_password(settings.redis_url)} failed ({exc}); "
                "check TIERSTREAM_REDIS_CA_FILE and that the URL is rediss:// to Redis' TLS port"
            )
        return None
    except (redis.exceptions.RedisError, OSError):  # slow or away: the worker copes with that
        return None
    finally:
        await client.aclose()
    return None


def url_without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    _userinfo, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{host}" if at else url


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
