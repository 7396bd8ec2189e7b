"""The worker's Prometheus metrics."""

from __future__ import annotations

from tierstream.worker.metrics import WorkerMetrics


def test_every_record_outcome_is_exported_from_the_start() -> None:
    text = WorkerMetrics().render()[0].decode()
    for outcome in ("applied", "duplicate", "dead_letter"):
        assert f'tierstream_records_total{{outcome="{outcome}"}} 0.0' in text
