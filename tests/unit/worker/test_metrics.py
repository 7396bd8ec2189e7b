"""The worker's Prometheus metrics."""

from __future__ import annotations

from tierstream.enginebuild import current
from tierstream.worker.metrics import WorkerMetrics


def test_every_record_outcome_is_exported_from_the_start() -> None:
    text = WorkerMetrics().render()[0].decode()
    for outcome in ("applied", "duplicate", "dead_letter"):
        assert f'tierstream_records_total{{outcome="{outcome}"}} 0.0' in text


def test_the_engine_build_is_exported() -> None:
    text = WorkerMetrics().render()[0].decode()
    assert f'tierstream_engine_build_info{{build="{current().name}"}} 1.0' in text
