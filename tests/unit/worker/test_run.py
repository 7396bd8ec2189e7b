"""`tierstream run`'s check that the local RocksDB store can be written, before joining."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tierstream.settings import Settings
from tierstream.worker.run import store_refusal


def test_a_writable_store_passes_and_is_created(tmp_path: Path) -> None:
    tabledir = tmp_path / "app-data" / "v1" / "tables"
    assert store_refusal(Settings(store="rocksdb://"), tabledir) is None
    assert tabledir.is_dir() and not any(tabledir.iterdir())  # the probe leaves nothing behind


def test_memory_store_is_not_checked(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert store_refusal(Settings(store="memory://"), blocked / "tables") is None


def test_a_store_that_cannot_be_written_is_refused_in_one_line(tmp_path: Path) -> None:
    blocked = tmp_path / "app-data"
    blocked.write_text("a file where the store's directory should be")
    refusal = store_refusal(Settings(store="rocksdb://"), blocked / "v1" / "tables")
    assert refusal is not None and "\n" not in refusal
    assert f"the local table store {blocked / 'v1' / 'tables'} is not writable" in refusal
    assert "TIERSTREAM_STORE" in refusal


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file modes")
def test_a_read_only_partition_database_is_refused(tmp_path: Path) -> None:
    tabledir = tmp_path / "tables"
    db = tabledir / "customers-2.db"
    db.mkdir(parents=True)
    db.chmod(0o555)
    try:
        refusal = store_refusal(Settings(store="rocksdb://"), tabledir)
    finally:
        db.chmod(0o755)
    assert refusal is not None and str(db) in refusal
