"""`to_the_end`: a fetch's batch is applied and sent whole even while Faust stops its fetcher;
`_admit`: nothing is admitted during a rebalance."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from tierstream.worker.metrics import WorkerMetrics
from tierstream.worker.wiring import Worker, to_the_end


async def faust_fetcher_stop(drainer: asyncio.Future[None]) -> None:
    """What faust.transport.consumer.Fetcher.on_stop does with the drain task (its
    one-second timeout shortened, so the drain is cancelled again and again)."""
    drainer.cancel()
    while True:
        try:
            await asyncio.wait_for(drainer, timeout=0.001)
        except asyncio.CancelledError:
            break
        except TimeoutError:
            continue
        else:
            break


def test_a_batch_cancelled_again_and_again_is_sent_whole_before_the_fetcher_stop_returns() -> None:
    log: list[str] = []

    async def batch(release: asyncio.Event) -> None:
        log.append("sent 1")
        await release.wait()  # a send waiting for the broker
        log.append("sent 2")

    async def scenario() -> bool:
        release = asyncio.Event()
        drainer = asyncio.ensure_future(to_the_end(batch(release)))
        await asyncio.sleep(0)
        asyncio.get_running_loop().call_later(0.05, release.set)
        await faust_fetcher_stop(drainer)
        log.append("producer stopped")
        return drainer.cancelled()

    assert asyncio.run(scenario()), "the cancellation is passed on once the batch is done"
    assert log == ["sent 1", "sent 2", "producer stopped"]


def test_the_batch_s_own_failure_is_raised() -> None:
    async def batch() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("delivery failed")

    with pytest.raises(RuntimeError, match="delivery failed"):
        asyncio.run(to_the_end(batch()))


def test_a_batch_that_is_not_cancelled_just_runs() -> None:
    done: list[int] = []

    async def batch() -> None:
        await asyncio.sleep(0)
        done.append(1)

    asyncio.run(to_the_end(batch()))
    assert done == [1]


def test_a_record_fetched_before_a_revocation_is_left_for_the_partitions_owner() -> None:
    """Found by chaos scenario 2: Faust still hands over records fetched before a
    revocation; admitting one loaded its partition again from the table and the old
    owner then wrote state for a partition another worker owned (one customer's stored
    state differed from the reference, every output right)."""
    worker = Worker.__new__(Worker)  # the admission step alone: no Faust app
    worker.rebalancing = True
    worker.metrics = WorkerMetrics()
    worker.buffered = worker.arrived = 0

    def no_partition(number: int) -> Any:
        raise AssertionError(f"partition {number} loaded during a rebalance")

    worker.partition = no_partition  # type: ignore[method-assign]
    acks: list[int] = []
    event = SimpleNamespace(
        message=SimpleNamespace(topic="t.balances", partition=3, offset=7), ack=lambda: acks.append(7)
    )
    worker._admit(event)
    assert acks == [], "not acked: the committed offset stays before it, so it is read again"
    assert (worker.buffered, worker.arrived) == (0, 0)
    assert worker.metrics.dropped_in_rebalance._value.get() == 1
