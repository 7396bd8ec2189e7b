"""The settings object: one owner of every environment variable."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from tierstream.settings import Settings
from tierstream.testing.worker import worker_env


def unlike_the_defaults() -> Settings:
    """Every field set to a value other than its default."""
    return Settings(
        broker_url="kafka://10.0.0.1:9093",
        redis_url="redis://10.0.0.2:6380/3",
        rules="psbc",
        store="rocksdb://",
        live_clock=False,
        web_port=7077,
        web_host="0.0.0.0",
        app_id="bank-a",
        topic_prefix="t1.",
        partitions=12,
        partitioner="crc32",
        create_topics=True,
        broker_security_protocol="SASL_SSL",
        broker_sasl_mechanism="SCRAM-SHA-512",
        broker_sasl_username="svc",
        broker_sasl_password=SecretStr("s3cret"),
        broker_ca_file="/etc/ca.pem",
        redis_password=SecretStr("r3dis"),
        redis_ca_file="/etc/redis-ca.pem",
        api_token=SecretStr("tok"),
        merge_idle_ms=25,
        batch_size=500,
        fetch_max_wait_ms=250,
        fetch_max_bytes=65536,
        commit_interval_ms=3_600_000,
        commit_max_records=7,
        buffered_records=13,
        decoded_customers=11,
        loglevel="INFO",
        sweep_interval_seconds=0.5,
        engine_build="pure",
    )


def test_the_sample_sets_every_field_to_something_else_than_its_default() -> None:
    sample = unlike_the_defaults()
    same = [name for name, field in Settings.model_fields.items() if getattr(sample, name) == field.default]
    assert same == [], "give these fields a non-default value in unlike_the_defaults()"


def test_environment_gives_back_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    sample = unlike_the_defaults()
    for name, value in sample.environment().items():
        monkeypatch.setenv(name, value)
    assert Settings() == sample


def test_a_worker_child_gets_every_setting_of_the_parent() -> None:
    """A hand-kept list once left the commit settings out: tests that set them ran the
    worker on the defaults."""
    env = worker_env(unlike_the_defaults(), "ccb")
    assert env["TIERSTREAM_COMMIT_INTERVAL_MS"] == "3600000"
    assert env["TIERSTREAM_BROKER_SASL_PASSWORD"] == "s3cret"
    assert env["TIERSTREAM_RULES"] == "ccb", "the rules argument wins"
