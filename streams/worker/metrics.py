"""Prometheus metrics of one worker (its own registry, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..engine.partition import APPLIED, DEAD_LETTER, DUPLICATE
from ..enginebuild import current

#: Every metric name the worker exports (the Grafana dashboard test checks against it).
METRIC_NAMES = (
    "tierstream_consumer_lag",
    "tierstream_records_total",
    "tierstream_outputs_total",
    "tierstream_event_to_output_seconds",
    "tierstream_dead_letters_total",
    "tierstream_redis_write_failures_total",
    "tierstream_redis_pending_customers",
    "tierstream_customers",
    "tierstream_customers_by_segment",
    "tierstream_commit_seconds",
    "tierstream_uncommitted_records",
    "tierstream_decoded_customers",
    "tierstream_spilled_customers_total",
)

#: event-to-output seconds; fine between 50 ms and 1 s, where the target (p99 500 ms) lies
LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.25,
    0.3,
    0.4,
    0.5,
    0.75,
    1,
    2.5,
    5,
    10,
    30,
    60,
)


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.lag = Gauge(
            "tierstream_consumer_lag",
            "Records not yet applied, from the high watermark",
            ["topic", "partition"],
            registry=r,
        )
        self.records = Counter(
            "tierstream_records", "Consumed input records by outcome", ["outcome"], registry=r
        )
        # Each outcome is exported from the start: a series born at its first increment
        # hides that increment from rate(), and a catch-up can apply thousands of records
        # between two scrapes.
        for outcome in (APPLIED, DUPLICATE, DEAD_LETTER):
            self.records.labels(outcome=outcome)
        self.outputs = Counter("tierstream_outputs", "Output records by type", ["type"], registry=r)
        self.latency = Histogram(
            "tierstream_event_to_output_seconds",
            "Input record timestamp to output delivered",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_seconds = Histogram(
            "tierstream_commit_seconds",
            "A commit's start (what it holds fixed) to its records acked: encoding, output "
            "deliveries, state and markers written",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.uncommitted = Gauge(
            "tierstream_uncommitted_records",
            "Records applied and not yet acked (held until a commit writes their effects)",
            registry=r,
        )
        self.decoded = Gauge(
            "tierstream_decoded_customers",
            "Customers held decoded (the budget is TIERSTREAM_DECODED_CUSTOMERS; a commit in flight "
            "holds those it has not encoded yet beyond it)",
            registry=r,
        )
        self.spilled = Counter(
            "tierstream_spilled_customers",
            "Changed customers encoded before their commit to stay within the decoded budget (one "
            "read again before that commit is decoded again): a steady rate says the budget is small",
            registry=r,
        )
        self.dead_letters = Counter(
            "tierstream_dead_letters", "Dead-lettered records by error", ["error"], registry=r
        )
        self.redis_failures = Counter(
            "tierstream_redis_write_failures", "Failed Redis pipeline writes", registry=r
        )
        self.redis_pending = Gauge(
            "tierstream_redis_pending_customers", "Customers waiting for a Redis write", registry=r
        )
        self.misrouted = Counter(
            "tierstream_misrouted_records",
            "Records that brought a customer to a partition other than TIERSTREAM_PARTITIONER predicts "
            "(its first record there)",
            ["topic"],
            registry=r,
        )
        self.dropped_in_rebalance = Counter(
            "tierstream_rebalance_dropped_records",
            "Records fetched before a revocation and left unacked (their partition's owner reads them again)",
            registry=r,
        )
        self.customers = Gauge(
            "tierstream_customers", "Customers by tier on this worker's partitions", ["tier"], registry=r
        )
        self.segments = Gauge(
            "tierstream_customers_by_segment",
            "Customers by the value of each published segment (SPEC §10) on this worker's partitions",
            ["segment", "value"],
            registry=r,
        )
        self.engine_build = Info(
            "tierstream_engine_build",
            "The engine build this worker runs: compiled (mypyc) or pure",
            registry=r,
        )
        self.engine_build.info({"build": current().name})

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
