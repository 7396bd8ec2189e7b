"""The worker's bearer check and lag figure (pure parts of the pages)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from tierstream.worker.web import bearer_refusal, lag, tables_recovered


@pytest.mark.parametrize(
    ("header", "token", "status"),
    [
        ("Bearer s3cret", b"s3cret", None),
        ("Bearer s3cret", b"", 403),  # no token configured: the API is off
        ("", b"s3cret", 401),
        ("Bearer wrong", b"s3cret", 401),
        ("Basic s3cret", b"s3cret", 401),
        ("bearer s3cret", b"s3cret", 401),
    ],
)
def test_bearer_refusal(header: str, token: bytes, status: int | None) -> None:
    refused = bearer_refusal(header, token)
    assert (refused[1] if refused else None) == status


@pytest.mark.parametrize(
    ("high", "acked", "expected"), [(0, -1, 0), (10, -1, 10), (10, 9, 0), (10, 4, 5), (3, 7, 0)]
)
def test_lag(high: int, acked: int, expected: int) -> None:
    assert lag(high, acked) == expected


@pytest.mark.parametrize(
    ("completed", "rebalancing", "expected"),
    [(False, False, False), (True, False, True), (True, True, False), (False, True, False)],
)
def test_tables_count_as_recovered_only_between_rebalances(
    completed: bool, rebalancing: bool, expected: bool
) -> None:
    """Faust never clears `recovery.completed`: a later rebalance's recovery is told by
    the worker's own flag (reading a marker then gave a partition a stale clock)."""
    event = asyncio.Event()
    if completed:
        event.set()
    app = SimpleNamespace(tables=SimpleNamespace(recovery=SimpleNamespace(completed=event)))
    assert tables_recovered(app, rebalancing) is expected
