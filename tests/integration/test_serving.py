"""Customer hashes written in one round trip (`tierstream.serving.write_customers`), against
a real redis-server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis
import redis.exceptions

from tierstream.serving import CUSTOMER_KEY, redis_client, write_customers
from tierstream.settings import Settings
from tierstream.testing.localstack import Proc, start_redis

pytestmark = pytest.mark.integration


def hashes(ids: range) -> list[tuple[str, dict[str, str]]]:
    return [(f"C{i:04d}", {"tier": "金卡", "aum": f"{i}.00", "rules_version": "2026-11"}) for i in ids]


def test_customers_are_written_and_a_failure_part_way_leaves_a_usable_connection(tmp_path: Path) -> None:
    proc: Proc = start_redis(tmp_path)
    reader = redis.Redis.from_url(proc.url, socket_timeout=2)
    try:
        reader.set(CUSTOMER_KEY.format("C0003"), "not a hash")  # HSET on it is a WRONGTYPE error

        async def run() -> bytes | None:
            client = redis_client(Settings(redis_url=proc.url), socket_timeout=2)
            try:
                await write_customers(client, hashes(range(0, 3)))
                with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
                    await write_customers(client, hashes(range(3, 6)))  # the first of three fails
                # the failed connection was dropped with its unread replies: a command
                # after it reads its own reply (a reused one would read a left-over ":1")
                assert await client.get(CUSTOMER_KEY.format("C0003")) == b"not a hash"
                await write_customers(client, hashes(range(10, 500)))
                return await client.get(CUSTOMER_KEY.format("C0003"))
            finally:
                await client.aclose()

        assert asyncio.run(run()) == b"not a hash"
        for i in (0, 1, 2, 4, 5, 10, 499):
            stored = reader.hgetall(CUSTOMER_KEY.format(f"C{i:04d}"))
            assert stored == {
                b"tier": "金卡".encode(),
                b"aum": f"{i}.00".encode(),
                b"rules_version": b"2026-11",
            }
        assert reader.get(CUSTOMER_KEY.format("C0003")) == b"not a hash"
    finally:
        reader.close()
        proc.stop()


def test_an_unreachable_redis_raises_a_connection_error(tmp_path: Path) -> None:
    proc: Proc = start_redis(tmp_path)
    url = proc.url
    proc.stop()

    async def run() -> None:
        client = redis_client(Settings(redis_url=url), socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            await write_customers(client, hashes(range(2)))
        finally:
            await client.aclose()

    with pytest.raises(redis.exceptions.ConnectionError):
        asyncio.run(run())
