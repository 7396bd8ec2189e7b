"""`tierstream export`: a deployment's tables (or an engine's state) as a state export."""

from __future__ import annotations

from ..engine.evaluate import series_specs
from ..engine.partition import PartitionEngine
from ..engine.rules import Rules
from .statefile import Manifest, PartitionClock


def rules_manifest(
    rules: Rules, partitions: dict[int, PartitionClock], partitioner: str, app_id: str = ""
) -> Manifest:
    """What state kept under `rules` covers: its lateness and each day series' length."""
    return Manifest(
        scheme=rules.scheme,
        version=rules.version,
        timezone=rules.timezone,
        lateness_days=rules.max_lateness_days,
        series={s.name: s.size for s in series_specs(rules)},
        partitions=partitions,
        partitioner=partitioner,
        customers=0,
        app_id=app_id,
    )


def engine_manifest(engine: PartitionEngine, rules: Rules, partitioner: str) -> Manifest:
    """`simulate --export`: one partition, the engine's clock."""
    return rules_manifest(rules, {0: PartitionClock(engine.clock)}, partitioner)
