"""replay/capture helpers that need no broker, and the one-line error when there is none."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tierstream.broker import KafkaIOError, client_kwargs
from tierstream.engine.jsonio import dumps_compact, loads
from tierstream.engine.timeutil import parse_instant
from tierstream.settings import Settings
from tierstream.testing.localstack import free_port
from tierstream.tools.kafkaio import _compact, _shift_raw, format_shifted


@pytest.mark.parametrize(
    ("text", "seconds", "shifted"),
    [
        ("2026-03-01T09:00:00+08:00", 3600, "2026-03-01T10:00:00+08:00"),
        ("2026-03-01T23:59:59.125Z", 2, "2026-03-02T00:00:01.125Z"),
        ("2026-02-28T12:00:00-05:30", 86_400, "2026-03-01T12:00:00-05:30"),
        ("2026-03-01T09:00:00.000001+08:00", -86_400 * 365, "2025-03-01T09:00:00.000001+08:00"),
    ],
)
def test_format_shifted_keeps_offset_and_fraction(text: str, seconds: int, shifted: str) -> None:
    assert format_shifted(text, seconds) == shifted
    assert parse_instant(shifted) - parse_instant(text) == seconds * 1_000_000


@pytest.mark.parametrize("text", ["2026-03-01T09:00:00", "2026-03-01 09:00:00Z", "yesterday"])
def test_format_shifted_leaves_bad_timestamps_alone(text: str) -> None:
    assert format_shifted(text, 60) is None


def test_shift_raw_changes_only_the_ts_value() -> None:
    raw = b'{"note":"2026-03-01T09:00:00Z","ts" : "2026-03-01T09:00:00Z","amount":1.10}'
    assert _shift_raw(raw, "2026-03-01T09:00:00Z", "2026-11-01T09:00:00Z") == (
        b'{"note":"2026-03-01T09:00:00Z","ts" : "2026-11-01T09:00:00Z","amount":1.10}'
    )
    assert _shift_raw(b'{"ts":"x"}', "y", "z") == b'{"ts":"x"}'


@pytest.mark.parametrize(
    "text",
    [
        '{"a":"客户","b":[1,2,{"c":null}],"d":true}',
        '{"amount":1.10,"big":1e2,"n":-0.0,"s":"\\u0000"}',
    ],
)
def test_compact_record_bytes_are_dumps_compact(text: str) -> None:
    value = loads(text)
    assert _compact(value) == dumps_compact(value).encode("utf-8")


@pytest.mark.parametrize("url", ["nohost", "kafka://", "kafka://host:port", "kafka://host:9092;:1"])
def test_bad_broker_url_is_refused(url: str) -> None:
    with pytest.raises(KafkaIOError, match="not like kafka://host:9092"):
        client_kwargs(Settings(broker_url=url))


def test_broker_url_list() -> None:
    kwargs = client_kwargs(Settings(broker_url="kafka://a:9092;b:9093"))
    assert kwargs == {"bootstrap_servers": ["a:9092", "b:9093"]}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierstream.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_unreachable_broker_is_one_line(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text(json.dumps({"topic": "bank.profiles", "value": {}}) + "\n")
    url = f"kafka://127.0.0.1:{free_port()}"
    for args in (("replay", "--events", str(events)), ("capture", "--out", str(tmp_path / "o.jsonl"))):
        result = _cli(*args, "--broker", url)
        assert result.returncode == 2
        assert result.stderr == (
            f"tierstream: error: cannot reach the broker at {url}; start it or set TIERSTREAM_BROKER_URL\n"
        )
