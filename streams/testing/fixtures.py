"""Real servers for integration tests: one Tansu broker and one redis-server per session.

Both start on free ports (tens of milliseconds each) and are stopped by pid at the
end. Tests share them and stay apart through a unique topic prefix and app id.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
import redis

from ..settings import Settings
from .localstack import Proc, free_port, start_broker, start_redis

_REDIS_DBS = itertools.count()


@pytest.fixture(scope="session")
def localstack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the servers write their logs (kept by pytest's tmp retention for post-mortems)."""
    return tmp_path_factory.mktemp("localstack")


@pytest.fixture(scope="session")
def broker(localstack_dir: Path) -> Iterator[Proc]:
    proc = start_broker(localstack_dir)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def redis_server(localstack_dir: Path) -> Iterator[Proc]:
    proc = start_redis(localstack_dir)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def topic_prefix() -> str:
    """A prefix no other test uses, so tests share one broker without seeing each other's records."""
    return f"t{uuid4().hex[:8]}."


@pytest.fixture
def settings(broker: Proc, redis_server: Proc, topic_prefix: str) -> Settings:
    # A Redis database of its own per test (1-15, flushed), so tests never see each
    # other's customers in the shared server.
    db = next(_REDIS_DBS) % 15 + 1
    redis_url = f"{redis_server.url.rsplit('/', 1)[0]}/{db}"
    redis.Redis.from_url(redis_url).flushdb()
    return Settings(
        broker_url=broker.url,
        redis_url=redis_url,
        topic_prefix=topic_prefix,
        app_id=f"it-{uuid4().hex[:8]}",
        partitions=4,
        live_clock=False,
        web_port=free_port(),
    )
