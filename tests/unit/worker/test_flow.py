"""The fetch brake: a topic-partition is paused at `limit` queued records, resumed at half."""

from __future__ import annotations

from collections import deque

from tierstream.worker.flow import FetchBrake


def brake(limit: int = 4) -> tuple[FetchBrake, list[str]]:
    log: list[str] = []
    return (
        FetchBrake(
            lambda t, p: log.append(f"pause {t}[{p}]"), lambda t, p: log.append(f"resume {t}[{p}]"), limit
        ),
        log,
    )


def test_a_full_queue_pauses_its_topic_partition_once_and_resumes_at_half() -> None:
    b, log = brake()
    queues = {0: {"a": deque(range(5)), "b": deque([1])}}
    for n in range(1, 6):
        b.admitted("a", 0, n)
    b.admitted("b", 0, 1)
    assert log == ["pause a[0]"]
    b.released(queues)
    assert log == ["pause a[0]"], "still over half"
    queues[0]["a"].popleft()
    queues[0]["a"].popleft()
    queues[0]["a"].popleft()
    b.released(queues)
    assert log == ["pause a[0]", "resume a[0]"] and not b.paused
    b.admitted("a", 0, 4)
    assert log[-1] == "pause a[0]"


def test_a_partition_gone_is_not_resumed_and_a_rebalance_forgets_every_pause() -> None:
    b, log = brake()
    b.admitted("a", 0, 4)
    b.admitted("a", 1, 4)
    b.released({1: {"a": deque(range(4))}})  # partition 0 was revoked: Faust dropped it
    assert log == ["pause a[0]", "pause a[1]"] and b.paused == {("a", 1)}
    b.forget()
    assert not b.paused
    b.released({1: {"a": deque()}})
    assert log == ["pause a[0]", "pause a[1]"]
