"""The Redis client's command packing (`tierstream.serving.HiredisPacking`)."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection

from tierstream.serving import HiredisPacking, redis_client
from tierstream.settings import Settings

COMMANDS: list[tuple[object, ...]] = [
    # the worker's customer hash: text only
    (
        "HSET",
        "tierstream:customer:C0000001",
        "tier",
        "金卡",
        "aum",
        "1090.71",
        "since",
        "2026-11-30T05:26:28+08:00",
    ),
    (b"HGETALL", b"tierstream:tier_counts:p0"),
    ("CONFIG GET", "maxmemory"),  # a command named in two words
    (b"CLIENT SETNAME", b"w"),
    ("SET", "tierstream:epoch", "app", "NX"),
    # not text: redis-py's own packer formats these
    ("SET", "k", 1, "EX", 30),
    ("SET", "k", 1.5),
    ("SET", "k", memoryview(b"abc")),
]


def redis_py_packing(args: tuple[object, ...]) -> bytes:
    return b"".join(Connection().pack_command(*args))  # type: ignore[arg-type]


def test_hiredis_packs_the_same_bytes_as_redis_py() -> None:
    packed = type("Packed", (HiredisPacking, Connection), {})()
    for args in COMMANDS:
        assert b"".join(packed.pack_command(*args)) == redis_py_packing(args), args
    joined = b"".join(packed.pack_commands(COMMANDS))  # type: ignore[arg-type]
    assert joined == b"".join(redis_py_packing(a) for a in COMMANDS)


def test_the_packing_goes_under_the_class_the_url_chose() -> None:
    urls = {
        "redis://h:6379/0": Connection,
        "rediss://h:6380/0": SSLConnection,
        "unix:///run/redis.sock": UnixDomainSocketConnection,
    }
    for url, base in urls.items():
        client: aioredis.Redis = redis_client(Settings(redis_url=url))
        chosen = client.connection_pool.connection_class
        assert issubclass(chosen, HiredisPacking) and issubclass(chosen, base), url
        connection = client.connection_pool.make_connection()
        assert isinstance(connection, base)
        assert connection.pack_command("GET", "k") == [b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"]
