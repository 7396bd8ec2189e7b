"""Every setting of the worker, in one object; every environment variable named here.

Flags override environment variables (`TIERSTREAM_*`), which override defaults.
Secrets are `SecretStr`: never logged, never in a repr.
"""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .contract import CUSTOMERS_TABLE, INPUT_TOPICS, OUTPUT_TOPICS, changelog_topic, output_topics
from .engine.rules import RulesError, load_rules

__all__ = ["CUSTOMERS_TABLE", "Settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIERSTREAM_", extra="ignore")

    broker_url: str = Field(
        "kafka://127.0.0.1:9092", description="Kafka bootstrap, kafka://host:port[;host:port]"
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis serving cache")
    rules: str = Field("cmb", description="rules file or preset name")
    store: str = Field("memory://", description="Faust table store: memory:// or rocksdb://")
    live_clock: bool = Field(True, description="move partition clocks with the wall clock")
    web_port: int = Field(6066, description="HTTP port: /metrics, /health, /ready")
    web_host: str = Field(
        "127.0.0.1", description="the host other workers reach this one at (proxied /customers requests)"
    )
    app_id: str = Field("tierstream", description="consumer group and table namespace")
    topic_prefix: str = Field("", description="prepended to every topic name, inputs and outputs")
    partitions: int = Field(8, ge=1, description="partitions of the input topics (co-partitioned)")
    partitioner: Literal["murmur2", "crc32", "consistent_random", "consistent", "fnv1a", "fnv1a_random"] = (
        Field(
            "murmur2",
            description="how the bank's producers pick a customer's partition: murmur2 (Java, aiokafka), "
            "crc32/consistent_random (librdkafka), fnv1a (Sarama); tierstream's producers and routing follow it",
        )
    )
    create_topics: bool = Field(
        False,
        description="`run` creates missing input topics with `partitions` partitions (development "
        "brokers; in production the topics' owners create them)",
    )
    # -- security (production); empty means plaintext
    broker_security_protocol: str = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    broker_sasl_mechanism: str = Field("PLAIN", description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
    broker_sasl_username: str = Field("", description="SASL user")
    broker_sasl_password: SecretStr = Field(SecretStr(""), description="SASL password")
    broker_ca_file: str = Field("", description="CA bundle for TLS to the broker")
    redis_password: SecretStr = Field(SecretStr(""), description="Redis AUTH password (or put it in the URL)")
    redis_ca_file: str = Field("", description="CA bundle for TLS to Redis (a rediss:// URL)")
    api_token: SecretStr = Field(
        SecretStr(""), description="bearer token for /customers endpoints (unset: they answer 403)"
    )
    # -- tuning
    merge_idle_ms: int = Field(
        0,
        ge=0,
        description="how long a caught-up input topic-partition holds the others back for records not "
        "yet produced (Kafka Streams' max.task.idle.ms); one never fetched is always waited for",
    )
    batch_size: int = Field(
        2000, ge=1, description="records per partition applied per state write and send batch"
    )
    fetch_max_wait_ms: int = Field(
        100,
        ge=1,
        description="longest a fetch waits at the broker for records (Faust fixes 1500; the local "
        "broker holds every fetch this long even when records arrive, measured)",
    )
    fetch_max_bytes: int = Field(
        1024**2,
        ge=1024,
        description="most bytes one fetch response may hold, every input topic-partition together "
        "(Kafka's fetch.max.bytes; aiokafka's default is 50 MB): a response stays in memory until "
        "all its records are applied",
    )
    commit_interval_ms: int = Field(
        1000,
        ge=0,
        description="how often applied records are committed: changed state written once, then acked",
    )
    commit_max_records: int = Field(
        20_000, ge=1, description="commit sooner once this many applied records are uncommitted"
    )
    buffered_records: int = Field(
        5_000,
        ge=1,
        description="records of one input topic-partition the merge holds before fetching it pauses "
        "(fetched again at half): a backlog waits on the broker, not in memory",
    )
    decoded_customers: int = Field(
        50_000,
        ge=1,
        description="customers a worker keeps decoded (~3 KB each), shared evenly among its partitions; "
        "the others stay encoded in the table (~0.7 KB) and are decoded again when a record or a "
        "day-boundary sweep reads them",
    )
    loglevel: str = Field("WARNING", description="worker log level (INFO shows table recovery)")
    sweep_interval_seconds: float = Field(5.0, gt=0, description="live clock and day-boundary sweep period")
    engine_build: Literal["auto", "pure", "compiled"] = Field(
        "auto",
        description="which engine runs: auto (the compiled one when `make compile` built it from the "
        "current sources, else pure Python), pure, or compiled (refuse to start without it); read by "
        "tierstream.enginebuild when tierstream is imported, so an environment variable, not a flag",
    )

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def environment(self) -> dict[str, str]:
        """Every setting as the environment variable that sets it, so a child `tierstream
        run` started with them runs with exactly these settings (a hand-kept list left some
        out, and tests that set them ran the worker on the defaults)."""
        prefix = self.model_config.get("env_prefix", "")
        env = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                text = value.get_secret_value()
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            env[f"{prefix}{name}".upper()] = text
        return env

    @property
    def input_topics(self) -> list[str]:
        return [self.topic(t) for t in INPUT_TOPICS]

    @property
    def output_topics(self) -> list[str]:
        """The outputs the rules write to: customer.segment-changes only with a `segments`
        section (a deployment without one needs no such topic)."""
        return [self.topic(t) for t in self._rules_outputs]

    @cached_property
    def _rules_outputs(self) -> tuple[str, ...]:
        try:
            return output_topics(load_rules(self.rules))
        except RulesError:  # refused where the rules are loaded, with the file and line
            return OUTPUT_TOPICS

    @property
    def changelog_topic(self) -> str:
        """Faust's changelog of the customers table: named after the app id, never prefixed."""
        return changelog_topic(self.app_id)

    @property
    def bootstrap_servers(self) -> list[str]:
        """host:port list for aiokafka from the kafka:// URL."""
        url = self.broker_url.removeprefix("kafka://")
        return [part.strip() for part in url.replace(",", ";").split(";") if part.strip()]
