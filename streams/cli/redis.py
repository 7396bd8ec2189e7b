"""`tierstream redis ...`: the serving cache."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import (
    BrokerOpt,
    _rules,
    _settings_from,
    err,
    fail,
    redis_app,
)


@redis_app.command("rebuild")
def redis_rebuild(
    rules: Annotated[
        str | None, typer.Option("--rules", help="Rules file or preset [env TIERSTREAM_RULES].")
    ] = None,
    broker: BrokerOpt = None,
    redis_url: Annotated[
        str | None, typer.Option("--redis", help="Redis URL [env TIERSTREAM_REDIS_URL].")
    ] = None,
    app_id: Annotated[
        str | None, typer.Option("--app-id", help="The worker's app id (names its tables).")
    ] = None,
) -> None:
    """Rewrite every customer's Redis hash and the tier counts from the tables' changelog."""
    from ..tools.rebuild import run_rebuild

    settings = _settings_from(
        {"rules": rules, "broker_url": broker, "redis_url": redis_url, "app_id": app_id}
    )
    loaded = _rules(settings.rules)
    from aiokafka.errors import KafkaError
    from redis.exceptions import RedisError

    from ..broker import KafkaIOError

    try:
        written, counts = run_rebuild(settings, loaded)
    except (OSError, KafkaError, RedisError, KafkaIOError) as exc:
        fail(
            f"cannot reach Redis or the broker ({exc}); check TIERSTREAM_REDIS_URL and TIERSTREAM_BROKER_URL"
        )
    err.print(
        f"rebuilt {written:,} customers: " + ", ".join(f"{t} {n:,}" for t, n in counts.items()),
        highlight=False,
    )
