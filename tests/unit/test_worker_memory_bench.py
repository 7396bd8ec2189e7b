"""The worker-memory benchmark's arithmetic (bench/worker_memory.py): the slope between two
sizes and the figure it extrapolates to 1,000,000 customers."""

from __future__ import annotations

import pytest

from bench.worker_memory import extrapolate, summarize


def test_a_straight_line_extrapolates_to_its_own_value() -> None:
    # 100 MB fixed + 1 KB a customer: 1,000,000 customers are 1,102,400 KB
    line = extrapolate((20_000, 102_400 + 20_000), (100_000, 102_400 + 100_000))
    assert line["slope_kb"] == pytest.approx(1.0)
    assert line["kb_per_customer_at"] == pytest.approx(1.1024)


def test_the_sizes_must_grow() -> None:
    with pytest.raises(ValueError):
        extrapolate((100_000, 1.0), (20_000, 2.0))


def test_summarize_reads_peak_settled_and_rocksdb_bytes_per_store() -> None:
    def size(customers: int, kb: int) -> dict[str, object]:
        runs = {
            "memory://": {"peak_kb": kb, "settled_kb": kb // 2},
            "rocksdb://": {"peak_kb": kb, "settled_kb": kb, "rocksdb_bytes": customers * 500},
        }
        return {"customers": customers, "runs": runs}

    figures = summarize([size(20_000, 60_000), size(100_000, 220_000)])
    memory = figures["memory://"]
    assert memory["peak"]["slope_kb"] == 2.0
    assert memory["peak"]["kb_per_customer"] == 2.2
    assert memory["settled"]["slope_kb"] == 1.0
    assert "rocksdb_bytes_per_customer" not in memory
    assert figures["rocksdb://"]["rocksdb_bytes_per_customer"] == 500
