"""The checkpoint: deliveries, then state, then markers, then acks (stub partitions and records)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from tierstream.worker import commit
from tierstream.worker.commit import Checkpoint, Encode, Write


def record(topic: str, offset: int) -> Any:
    return SimpleNamespace(topic=topic, offset=offset)


def partition(number: int) -> Any:
    return SimpleNamespace(number=number, acked={})


class Harness:
    """A checkpoint whose writes are logged; `fail_state` makes the state write fail."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.fail_state = False
        self.now = 0.0
        #: what the merge does while the commit encodes (in the worker: applies and sends)
        self.during_encoding: Callable[[], None] | None = None
        #: each commit's duration, as the checkpoint reports it
        self.durations: list[float] = []
        self.checkpoint = Checkpoint(
            self.snapshot,
            self.send_state,
            self.send_markers,
            self.ack,
            clock=lambda: self.now,
            committed=self.durations.append,
        )

    def snapshot(self, parts: list[Any]) -> Encode:
        numbers = sorted(p.number for p in parts)
        self.log.append(f"snapshot {numbers}")

        async def encode() -> tuple[list[Write], list[Write]]:
            await asyncio.sleep(0)  # as the worker's, in slices
            if self.during_encoding is not None:
                self.during_encoding()
            return [(n, b"c", b"state") for n in numbers], [(n, b"m", b"marker") for n in numbers]

        return encode

    async def send_state(self, writes: list[Write]) -> None:
        await asyncio.sleep(0)
        if self.fail_state:
            raise OSError("broker away")
        self.log.append(f"state {[n for n, _, _ in writes]}")

    async def send_markers(self, markers: list[Write]) -> None:
        self.log.append(f"markers {[n for n, _, _ in markers]}")

    def ack(self, number: int, topic: str, offsets: list[int]) -> None:
        self.log.extend(f"ack {topic}:{o}" for o in offsets)

    def events(self, topic: str, *offsets: int) -> list[Any]:
        return [record(topic, o) for o in offsets]

    def delivery(self, name: str) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f: self.log.append(f"delivered {name}"))
        self.checkpoint.deliveries.append(future)
        return future


def test_a_commit_writes_deliveries_then_state_then_markers_then_acks() -> None:
    async def scenario() -> list[str]:
        h = Harness()
        p0, p1 = partition(0), partition(1)
        h.checkpoint.applied([(p0, h.events("bal", 0, 1)), (p1, h.events("txn", 7))])
        out = h.delivery("out")
        await h.checkpoint.commit()
        assert h.log == ["snapshot [0, 1]"], "the snapshot is taken when the commit starts"
        out.set_result(None)
        await h.checkpoint.wait()
        assert p0.acked == {"bal": 1} and p1.acked == {"txn": 7}
        return h.log

    assert asyncio.run(scenario()) == [
        "snapshot [0, 1]",
        "delivered out",
        "state [0, 1]",
        "markers [0, 1]",
        "ack bal:0",
        "ack bal:1",
        "ack txn:7",
    ]


def test_a_failed_delivery_acks_nothing_and_is_raised() -> None:
    async def scenario() -> Harness:
        h = Harness()
        p0 = partition(0)
        h.checkpoint.applied([(p0, h.events("bal", 0))])
        h.delivery("out").set_exception(OSError("delivery failed"))
        await h.checkpoint.commit()
        with pytest.raises(OSError, match="delivery failed"):
            await h.checkpoint.wait()
        assert p0.acked == {}
        return h

    h = asyncio.run(scenario())
    assert not any(line.startswith(("state", "markers", "ack")) for line in h.log)


def test_a_failed_state_write_writes_no_marker_and_acks_nothing() -> None:
    async def scenario() -> Harness:
        h = Harness()
        h.fail_state = True
        h.checkpoint.applied([(partition(0), h.events("bal", 0))])
        await h.checkpoint.commit()
        with pytest.raises(OSError):
            await h.checkpoint.wait()
        return h

    assert asyncio.run(scenario()).log == ["snapshot [0]"]


def test_a_revoke_mid_commit_waits_for_it_then_commits_the_rest() -> None:
    """What `Worker._on_revoked` does: commit, then wait, while a commit is in flight."""

    async def scenario() -> list[str]:
        h = Harness()
        p0 = partition(0)
        h.checkpoint.applied([(p0, h.events("bal", 0))])
        first = h.delivery("first")
        await h.checkpoint.commit()
        h.checkpoint.applied([(p0, h.events("bal", 1))])  # applied while the first is in flight
        second = h.delivery("second")
        asyncio.get_running_loop().call_soon(first.set_result, None)
        asyncio.get_running_loop().call_soon(second.set_result, None)
        await h.checkpoint.commit()  # the revoke: waits for the first commit
        await h.checkpoint.wait()
        assert p0.acked == {"bal": 1}
        assert not h.checkpoint.pending and h.checkpoint.committing is None
        return h.log

    log = asyncio.run(scenario())
    snapshots = [i for i, line in enumerate(log) if line == "snapshot [0]"]
    assert len(snapshots) == 2, "the second commit snapshots what the first did not hold"
    assert snapshots[0] < log.index("ack bal:0") < snapshots[1] < log.index("ack bal:1"), (
        "the second snapshot is taken only after the first commit finished"
    )


def test_only_what_was_applied_before_the_snapshot_is_acked() -> None:
    async def scenario() -> tuple[Harness, Any]:
        h = Harness()
        p0 = partition(0)
        h.checkpoint.applied([(p0, h.events("bal", 0))])
        out = h.delivery("out")
        await h.checkpoint.commit()
        h.checkpoint.applied([(p0, h.events("bal", 1))])
        out.set_result(None)
        await h.checkpoint.wait()
        return h, p0

    h, p0 = asyncio.run(scenario())
    assert p0.acked == {"bal": 0}
    assert "ack bal:1" not in h.log
    assert h.checkpoint.uncommitted_records == 1 and h.checkpoint.pending


def test_nothing_applied_commits_nothing() -> None:
    async def scenario() -> Harness:
        h = Harness()
        await h.checkpoint.commit()
        await h.checkpoint.wait()
        return h

    h = asyncio.run(scenario())
    assert h.log == [] and h.checkpoint.committing is None


def test_a_moved_clock_commits_its_marker_without_records() -> None:
    async def scenario() -> list[str]:
        h = Harness()
        h.checkpoint.moved[3] = partition(3)
        assert h.checkpoint.pending
        await h.checkpoint.commit()
        await h.checkpoint.wait()
        return h.log

    assert asyncio.run(scenario()) == ["snapshot [3]", "state [3]", "markers [3]"]


@pytest.mark.parametrize(
    ("records", "elapsed", "due"),
    [(0, 0.0, False), (99, 0.099, False), (100, 0.0, True), (0, 0.1, True)],
)
def test_a_commit_is_due_after_the_interval_or_enough_records(
    records: int, elapsed: float, due: bool
) -> None:
    h = Harness()
    h.checkpoint.uncommitted_records = records
    h.now = elapsed
    assert h.checkpoint.due(interval_ms=100, max_records=100) is due


def test_outputs_sent_while_the_commit_encodes_are_delivered_before_its_state() -> None:
    """A customer encoded after more of its records were applied carries their effects
    into the changelog: their outputs must be delivered first (kill -9 safety)."""

    async def scenario() -> tuple[Harness, Any]:
        h = Harness()
        p0 = partition(0)
        h.checkpoint.applied([(p0, h.events("bal", 0))])
        first = h.delivery("first")
        later: list[asyncio.Future[Any]] = []
        h.during_encoding = lambda: later.append(h.delivery("applied meanwhile"))
        await h.checkpoint.commit()
        first.set_result(None)
        await asyncio.sleep(0.01)
        assert not any(line.startswith("state") for line in h.log), "state waits for the later output"
        later[0].set_result(None)
        await h.checkpoint.wait()
        return h, p0

    h, p0 = asyncio.run(scenario())
    assert h.log.index("delivered applied meanwhile") < h.log.index("state [0]")
    assert p0.acked == {"bal": 0}


def test_a_commit_whose_encoding_ends_inside_a_hand_over_waits_for_its_end() -> None:
    """The merge applied records, then began handing their outputs over and waited for
    room in a batch; meanwhile the commit encoded customers carrying those records. The
    outputs still to hand over must be delivered before that state (kill -9 safety)."""

    async def scenario() -> tuple[Harness, Any]:
        h = Harness()
        p0 = partition(0)
        h.checkpoint.applied([(p0, h.events("bal", 0))])
        room = asyncio.Event()
        deliveries: list[asyncio.Future[Any]] = []

        async def send(name: str) -> asyncio.Future[Any]:
            if name == "second":
                await room.wait()  # the producer's batch is full
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            future.add_done_callback(lambda f: h.log.append(f"delivered {name}"))
            deliveries.append(future)
            return future

        handing = asyncio.ensure_future(h.checkpoint.hand_over(["first", "second"], send))
        await asyncio.sleep(0)  # "first" handed, "second" waits for room
        await h.checkpoint.commit()
        await asyncio.sleep(0.01)  # the encoding is done
        deliveries[0].set_result(None)
        await asyncio.sleep(0.01)
        assert not any(line.startswith("state") for line in h.log), "state waits for the hand-over"
        room.set()
        await handing
        await asyncio.sleep(0.01)
        assert not any(line.startswith("state") for line in h.log), "and for what it handed after"
        deliveries[1].set_result(None)
        await h.checkpoint.wait()
        return h, p0

    h, p0 = asyncio.run(scenario())
    assert h.log.index("delivered second") < h.log.index("state [0]")
    assert p0.acked == {"bal": 0}
    assert h.checkpoint.handing is None


def test_a_hand_over_that_fails_still_ends() -> None:
    """A send that raises ends the hand-over: a commit waiting for it goes on."""

    async def scenario() -> list[str]:
        h = Harness()
        h.checkpoint.applied([(partition(0), h.events("bal", 0))])

        async def send(name: str) -> asyncio.Future[Any]:
            await asyncio.sleep(0)
            raise OSError("producer closed")

        handing = asyncio.ensure_future(h.checkpoint.hand_over(["out"], send))
        await h.checkpoint.commit()
        with pytest.raises(OSError):
            await handing
        await h.checkpoint.wait()
        return h.log

    assert asyncio.run(scenario()) == ["snapshot [0]", "state [0]", "markers [0]", "ack bal:0"]


def test_a_commit_reports_its_duration_and_what_it_holds_unacked() -> None:
    """For `tierstream_commit_seconds` and `tierstream_uncommitted_records`: a commit that
    lags holds every record applied meanwhile (memory, and a longer redelivery)."""

    async def scenario() -> tuple[Harness, list[int]]:
        h = Harness()
        h.checkpoint.applied([(partition(0), h.events("bal", 0, 1, 2))])
        seen = [h.checkpoint.unacked_records]
        out = h.delivery("out")
        h.now = 10.0
        await h.checkpoint.commit()
        h.checkpoint.applied([(partition(0), h.events("bal", 3))])
        seen.append(h.checkpoint.unacked_records)  # 3 being written, 1 not in a commit yet
        h.now = 12.5
        out.set_result(None)
        await h.checkpoint.wait()
        seen.append(h.checkpoint.unacked_records)
        return h, seen

    h, seen = asyncio.run(scenario())
    assert seen == [3, 4, 1]
    assert h.durations == [2.5]


def test_no_commit_is_due_while_one_is_in_flight() -> None:
    """The merge applies on while a commit encodes and writes, rather than waiting for it."""

    async def scenario() -> list[bool]:
        h = Harness()
        h.checkpoint.applied([(partition(0), h.events("bal", 0))])
        out = h.delivery("out")
        await h.checkpoint.commit()
        h.checkpoint.applied([(partition(0), h.events("bal", 1))])
        h.now = 10.0
        seen = [h.checkpoint.in_flight, h.checkpoint.due(interval_ms=100, max_records=1)]
        out.set_result(None)
        await h.checkpoint.wait()
        seen += [h.checkpoint.in_flight, h.checkpoint.due(interval_ms=100, max_records=1)]
        return seen

    assert asyncio.run(scenario()) == [True, False, False, True]


@pytest.mark.parametrize(("records", "elapsed", "due"), [(99, 10.0, False), (100, 0.0, True)])
def test_behind_a_backlog_a_commit_is_due_by_records_only(records: int, elapsed: float, due: bool) -> None:
    h = Harness()
    h.checkpoint.uncommitted_records = records
    h.now = elapsed
    assert h.checkpoint.due(interval_ms=100, max_records=100, behind=True) is due


def test_make_room_waits_for_the_commit_in_flight_once_a_whole_commit_is_applied_since() -> None:
    async def run() -> list[str]:
        h = Harness()
        cp = h.checkpoint
        cp.applied([(partition(0), [record("t", 1)])])
        await cp.commit()
        assert cp.in_flight
        cp.applied([(partition(0), [record("t", 2)])])
        await cp.make_room(2)  # one record since: go on applying
        assert cp.in_flight
        cp.applied([(partition(0), [record("t", 3)])])
        await cp.make_room(2)
        assert not cp.in_flight and cp.due(10**6, 2)
        return h.log

    assert asyncio.run(run())[-1] == "ack t:1"


def test_delivered_outputs_are_dropped_and_failed_ones_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commit, "PRUNE_DELIVERIES", 3)

    async def run() -> None:
        cp = Harness().checkpoint
        cp.prune_at = 3
        loop = asyncio.get_running_loop()
        done, failed, waiting = loop.create_future(), loop.create_future(), loop.create_future()
        done.set_result(None)
        failed.set_exception(OSError("broker away"))
        for f in (done, failed, waiting):
            cp.delivering(f)
        assert cp.deliveries == [failed, waiting]
        waiting.set_result(None)
        with pytest.raises(OSError):
            await asyncio.gather(*cp.deliveries)

    asyncio.run(run())
