"""`tierstream run`: create the topics, build the Faust app and worker, run until stopped."""

from __future__ import annotations

import asyncio
import logging

import faust

from .app import create_app
from .engine.rules import Rules
from .settings import Settings
from .worker import Worker


def build(settings: Settings, rules: Rules) -> tuple[faust.App, Worker]:
    app = create_app(settings)
    worker = Worker(app, settings, rules)
    worker.install()
    return app, worker


def prepare_topics(settings: Settings) -> None:
    """Inputs co-partitioned with the tables; outputs keyed the same way."""
    from .kafkaio import ensure_topics

    names = settings.input_topics + settings.output_topics
    asyncio.run(ensure_topics(settings, names, settings.partitions))


def run_worker(settings: Settings, rules: Rules, loglevel: str = "WARNING") -> None:
    """Topics must exist (`prepare_topics`, or the CLI's reachability check)."""
    asyncio.set_event_loop(asyncio.new_event_loop())
    app, _ = build(settings, rules)
    logging.getLogger("faust").setLevel(loglevel)
    # aiokafka logs every send at DEBUG; building those records cost 4% of the worker
    logging.getLogger("aiokafka").setLevel(max(logging.INFO, logging.getLevelName(loglevel)))
    faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False).execute_from_commandline()
