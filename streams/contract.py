"""Every name on the wire and at rest, in one place: topics, the customers table, its
changelog, the partition marker. No Faust.

Topic names are bare here (`bank.balances`); `Settings.topic` prepends the
deployment's prefix. The engine owns the bare names it reads and emits (its
outputs name their topic); they are re-exported here so that nothing else spells a
topic. The wire grammar (timestamps: `engine.timeutil`, money: `engine.money`) and
the enums (`engine.decode`) stay with the engine that parses them.

The customers table holds each customer's encoded state (`engine.codec`) under its
id, and one marker per partition under a reserved key: the partition's clock, the
day its customers were last swept to, the customers per tier, the highest applied
offset of each input topic-partition, and the state's shape (tiers and day rings).
The worker writes and reads them; `bootstrap` writes them; `export` and `redis
rebuild` read them from the changelog.
"""

from __future__ import annotations

from typing import Any

import orjson

from .engine.decode import BALANCES, INPUT_TOPICS, PROFILES, TRANSACTIONS
from .engine.evaluate import (
    CHURN_WARNINGS,
    DLQ,
    OPPORTUNITIES,
    OUTPUT_TOPICS,
    SEGMENT_CHANGES,
    TIER_CHANGES,
    output_topics,
)

__all__ = [
    "BALANCES",
    "BUSINESS_TOPICS",
    "CHURN_WARNINGS",
    "CUSTOMERS_TABLE",
    "DLQ",
    "INPUT_TOPICS",
    "MARKER_PREFIX",
    "OPPORTUNITIES",
    "OUTPUT_TOPICS",
    "PROFILES",
    "SEGMENT_CHANGES",
    "TIER_CHANGES",
    "TRANSACTIONS",
    "changelog_topic",
    "marker_key",
    "marker_partition",
    "marker_value",
    "output_topics",
]

#: the outputs a business consumer reads (the dead-letter topic is for operations)
BUSINESS_TOPICS = (TIER_CHANGES, OPPORTUNITIES, CHURN_WARNINGS, SEGMENT_CHANGES)

#: the reserved key prefix of a partition's marker (customer ids never start with NUL)
MARKER_PREFIX = b"\x00partition:"


#: the Faust table of customer states (and markers)
CUSTOMERS_TABLE = "customers"


def changelog_topic(app_id: str) -> str:
    """Faust's changelog of the customers table (named after the app id, not the prefix)."""
    return f"{app_id}-{CUSTOMERS_TABLE}-changelog"


def marker_key(partition: int) -> bytes:
    return MARKER_PREFIX + str(partition).encode()


def marker_partition(key: bytes) -> int | None:
    """The partition of a marker key; None for a customer's key."""
    if not key.startswith(MARKER_PREFIX):
        return None
    return int(key[len(MARKER_PREFIX) :])


def marker_value(
    shape: dict[str, Any],
    clock: int | None,
    clock_day: int | None,
    swept_day: int | None,
    counts: dict[str, int],
    offsets: dict[int, int],
) -> bytes:
    """`offsets`: input topic index (balances 0, transactions 1, profiles 2) -> the
    highest offset applied (records at or below it are skipped after a restart)."""
    return orjson.dumps(
        {
            "shape": shape,
            "clock": clock,
            "clock_day": clock_day,
            "swept_day": swept_day,
            "counts": counts,
            "offsets": {str(i): o for i, o in offsets.items()},
        }
    )
