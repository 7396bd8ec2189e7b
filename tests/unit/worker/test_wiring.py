"""`to_the_end`: a fetch's batch is applied and sent whole even while Faust stops its fetcher."""

from __future__ import annotations

import asyncio

import pytest

from tierstream.worker.wiring import to_the_end


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
