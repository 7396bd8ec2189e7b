"""TLS and authentication on the wire: the worker, `replay` and `capture` over TLS to the
broker, Redis over TLS with a password, and wrong credentials ending in one line.

The CA is made in the test (openssl); see tests/integration/tls.py for why the broker's
TLS listener is a terminator in front of Tansu.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis
from pydantic import SecretStr

from tierstream.settings import Settings
from tierstream.testing.backlog import make_bank, output_ids, simulate_per_partition
from tierstream.testing.localstack import Proc, free_port
from tierstream.testing.tls import Pki, TlsBroker, make_pki, start_tls_redis
from tierstream.testing.worker import WorkerProcess

pytestmark = pytest.mark.integration

RULES = "cmb"
REDIS_PASSWORD = "s3cret-" + uuid4().hex[:6]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_broker(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    broker = TlsBroker(tmp_path_factory.mktemp("tls-broker"), pki).start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def tls_redis(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_tls_redis(tmp_path_factory.mktemp("tls-redis"), pki, REDIS_PASSWORD)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def tls_settings(tls_broker: TlsBroker, tls_redis: Proc, pki: Pki) -> Settings:
    return Settings(
        broker_url=tls_broker.url,
        broker_security_protocol="SSL",
        broker_ca_file=str(pki.ca),
        redis_url=tls_redis.url,
        redis_password=SecretStr(REDIS_PASSWORD),
        redis_ca_file=str(pki.ca),
        topic_prefix=f"t{uuid4().hex[:8]}.",
        app_id=f"tls-{uuid4().hex[:8]}",
        partitions=2,
        live_clock=False,
        web_port=free_port(),
    )


def env_of(settings: Settings, **changes: str) -> dict[str, str]:
    """The environment `tierstream` reads these settings from."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"TIERSTREAM_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    env.update({f"TIERSTREAM_{k.upper()}": v for k, v in changes.items()})
    return env


def tierstream(settings: Settings, *args: str, cwd: Path, **changes: str) -> subprocess.CompletedProcess[str]:
    # The timeout only guards against a hang (a retry loop would be one); nothing is timed.
    return subprocess.run(
        [sys.executable, "-m", "tierstream.cli", *args],
        env=env_of(settings, **changes),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *names: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tierstream: error: ")
    assert "Traceback" not in result.stderr
    for name in names:
        assert name in lines[0]


def test_worker_replay_and_capture_over_tls(tls_settings: Settings, tmp_path: Path) -> None:
    events = tmp_path / "bank.jsonl"
    make_bank(events, customers=20, days=30, seed=3)
    published = tierstream(tls_settings, "replay", "--events", str(events), cwd=tmp_path)
    assert published.returncode == 0, published.stderr
    sent = int(published.stderr.split("published ")[1].split(" records")[0].replace(",", ""))
    worker = WorkerProcess(tls_settings, RULES, tmp_path / "worker.log")
    try:
        worker.wait_for(lambda: worker.consumed() >= sent, 180, f"{sent} records consumed over TLS")
        worker.wait_for(lambda: worker.lag() == 0, 30, "lag 0")
        out = tmp_path / "outputs.jsonl"
        captured = tierstream(tls_settings, "capture", "--out", str(out), "--idle-seconds", "3", cwd=tmp_path)
        assert captured.returncode == 0, captured.stderr
        outputs: list[dict[str, Any]] = [json.loads(x) for x in out.read_text("utf-8").splitlines()]
        expected = simulate_per_partition(events, RULES, tls_settings.partitions)
        assert output_ids(expected)
        assert output_ids(outputs) == output_ids(expected)

        # Redis over TLS with the password: the worker served every customer with an output.
        client = redis.Redis.from_url(
            tls_settings.redis_url, password=REDIS_PASSWORD, ssl_ca_certs=tls_settings.redis_ca_file
        )

        def served() -> bool:
            return bool(client.hlen("tierstream:tier_counts")) and all(
                client.exists(f"tierstream:customer:{x['value']['customer_id']}")
                for x in outputs
                if x["topic"] == "tier.changes"
            )

        worker.wait_for(served, 30, "customers in the TLS Redis")
    finally:
        worker.stop()


def test_the_tls_listener_refuses_plaintext(tls_settings: Settings, tmp_path: Path) -> None:
    """The TLS test above proves something: a client without TLS gets nowhere."""
    events = tmp_path / "one.jsonl"
    make_bank(events, customers=1, days=1, seed=1)
    result = tierstream(
        tls_settings, "replay", "--events", str(events), cwd=tmp_path, broker_security_protocol="PLAINTEXT"
    )
    assert_one_line_error(result, "speaks TLS", "TIERSTREAM_BROKER_SECURITY_PROTOCOL=SSL")


def test_replay_and_capture_with_the_wrong_ca_fail_in_one_line(
    tls_settings: Settings, pki: Pki, tmp_path: Path
) -> None:
    events = tmp_path / "one.jsonl"
    make_bank(events, customers=1, days=1, seed=1)
    wrong = {"broker_ca_file": str(pki.other_ca)}
    result = tierstream(tls_settings, "replay", "--events", str(events), cwd=tmp_path, **wrong)
    assert_one_line_error(result, "TLS handshake", "TIERSTREAM_BROKER_CA_FILE")
    result = tierstream(tls_settings, "capture", "--out", "-", "--idle-seconds", "1", cwd=tmp_path, **wrong)
    assert_one_line_error(result, "TLS handshake", "TIERSTREAM_BROKER_CA_FILE")
    result = tierstream(
        tls_settings,
        "replay",
        "--events",
        str(events),
        cwd=tmp_path,
        broker_ca_file=str(tmp_path / "none.pem"),
    )
    assert_one_line_error(result, "TIERSTREAM_BROKER_CA_FILE", "none.pem")


def test_worker_with_the_wrong_ca_fails_in_one_line(tls_settings: Settings, pki: Pki, tmp_path: Path) -> None:
    result = tierstream(tls_settings, "run", cwd=tmp_path, broker_ca_file=str(pki.other_ca))
    assert_one_line_error(result, "TLS handshake", "TIERSTREAM_BROKER_CA_FILE")


@pytest.mark.parametrize("password", ["wrong-password", ""])
def test_worker_with_a_wrong_redis_password_fails_in_one_line(
    tls_settings: Settings, tmp_path: Path, password: str
) -> None:
    result = tierstream(tls_settings, "run", cwd=tmp_path, redis_password=password)
    assert_one_line_error(result, "TIERSTREAM_REDIS_PASSWORD")
    assert password == "" or password not in result.stderr  # secrets stay out of messages


def test_worker_with_the_wrong_redis_ca_fails_in_one_line(
    tls_settings: Settings, pki: Pki, tmp_path: Path
) -> None:
    result = tierstream(tls_settings, "run", cwd=tmp_path, redis_ca_file=str(pki.other_ca))
    assert_one_line_error(result, "TLS handshake with Redis", "TIERSTREAM_REDIS_CA_FILE")
