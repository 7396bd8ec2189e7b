"""`tierstream run`: the worker (Faust is imported only when it runs)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from .common import (
    BrokerOpt,
    _quiet_aiokafka,
    _rules,
    _settings_from,
    app,
    fail,
)


@app.command()
def run(
    rules: Annotated[
        str | None, typer.Option("--rules", help="Rules file or preset [env TIERSTREAM_RULES, cmb].")
    ] = None,
    broker: BrokerOpt = None,
    redis_url: Annotated[
        str | None, typer.Option("--redis", help="Redis URL [env TIERSTREAM_REDIS_URL].")
    ] = None,
    store: Annotated[
        str | None, typer.Option("--store", help="memory:// or rocksdb:// [env TIERSTREAM_STORE].")
    ] = None,
    live_clock: Annotated[
        bool | None, typer.Option("--live-clock/--no-live-clock", help="Move clocks with the wall clock.")
    ] = None,
    web_port: Annotated[
        int | None, typer.Option("--web-port", help="HTTP port [env TIERSTREAM_WEB_PORT, 6066].")
    ] = None,
    app_id: Annotated[str | None, typer.Option("--app-id", help="Consumer group / table namespace.")] = None,
    topic_prefix: Annotated[
        str | None, typer.Option("--topic-prefix", help="Prepended to every topic name.")
    ] = None,
    partitions: Annotated[
        int | None, typer.Option("--partitions", min=1, help="Input topic partitions.")
    ] = None,
    loglevel: Annotated[
        str | None, typer.Option("--loglevel", help="Worker log level [env TIERSTREAM_LOGLEVEL, WARNING].")
    ] = None,
    create_topics: Annotated[
        bool | None,
        typer.Option(
            "--create-topics",
            help="Create missing input topics with --partitions partitions (development brokers) "
            "[env TIERSTREAM_CREATE_TOPICS].",
        ),
    ] = None,
) -> None:
    """Run a Faust worker: consume the input topics, publish tiers, serve Redis and /metrics.

    It first checks the topics, creating none unless told: input topics must exist with
    TIERSTREAM_PARTITIONS partitions, and an existing changelog must have as many.
    """
    from ..broker import KafkaIOError
    from ..worker.run import TopicsRefused, run_worker

    settings = _settings_from(
        {
            "rules": rules,
            "broker_url": broker,
            "redis_url": redis_url,
            "store": store,
            "live_clock": live_clock,
            "web_port": web_port,
            "app_id": app_id,
            "topic_prefix": topic_prefix,
            "partitions": partitions,
            "loglevel": loglevel,
            "create_topics": create_topics,
        }
    )
    loaded = _rules(settings.rules)
    _quiet_aiokafka()
    _refuse_redis(settings)
    try:
        run_worker(settings, loaded, settings.loglevel.upper())
    except KafkaIOError as exc:
        fail(str(exc))
    except TopicsRefused as exc:
        for other in exc.refusals[:-1]:
            print(f"tierstream: error: {other}", file=sys.stderr)
        fail(exc.refusals[-1])


def _refuse_redis(settings: Any) -> None:
    """Fail fast, in one line, when Redis refuses our credentials. An unreachable Redis
    is fine: the worker catches up when it returns."""
    import asyncio

    from ..serving import redis_refusal

    refusal = asyncio.run(redis_refusal(settings))
    if refusal is not None:
        fail(refusal)
