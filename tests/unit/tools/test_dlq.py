"""`tierstream dlq replay` without a broker: the worker's one-record checks run before
anything is published, and records go out keyed by their payload's customer_id.
(Decoding dead-letter files is covered in test_deploy.py; the real broker in
tests/integration/test_dlq.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tierstream.engine.decode import BadRecord
from tierstream.engine.evaluate import DLQ
from tierstream.engine.rules import load_rules
from tierstream.engine.timeutil import parse_instant
from tierstream.testing.book import make_rules
from tierstream.testing.localstack import free_port
from tierstream.tools.dlq import Checker, DlqStats, Refused, Republish, check_file, plan, vet

NOW = parse_instant("2026-03-02T12:00:00+08:00")
BALANCE = {
    "event_id": "b1",
    "customer_id": "C000007",
    "account_id": "C000007-D1",
    "product": "deposit",
    "balance": "120000.00",
    "ts": "2026-03-01T10:00:00+08:00",
}


def payload(**changes: Any) -> bytes:
    value = {k: v for k, v in {**BALANCE, **changes}.items() if v is not None}
    return json.dumps(value).encode("utf-8")


def checker() -> Checker:
    return Checker(make_rules(), now=lambda: NOW)


def dead_line(value: bytes | dict[str, Any], key: str | None, source: str = "bank.balances") -> bytes:
    text = value.decode("utf-8") if isinstance(value, bytes) else json.dumps(value)
    dead = {"source_topic": source, "key": key, "payload": text, "payload_encoding": "utf-8", "error": "x"}
    return json.dumps({"topic": DLQ, "value": dead}).encode("utf-8")


def test_checker_passes_a_fixed_record_and_names_its_customer() -> None:
    assert checker().customer("bank.balances", payload()) == "C000007"
    assert checker().customer("bank.balances", payload(currency="USD", balance="10.00")) == "C000007"


@pytest.mark.parametrize(
    ("source", "raw", "error"),
    [
        ("bank.balances", payload(balance="12O,000.00"), "bad_amount"),
        ("bank.balances", payload(customer_id=None), "schema_violation"),
        ("bank.balances", payload(currency="XYZ"), "schema_violation"),
        ("bank.balances", payload(ts="2026-03-01T10:00:00"), "naive_timestamp"),
        ("bank.balances", payload(ts="2026-03-02T12:06:00+08:00"), "future_timestamp"),
        ("bank.balances", b'{"customer_id": "C000007", "broken', "invalid_json"),
        ("bank.balances", b"\xff\xfe", "invalid_json"),
        ("bank.balances", payload(note="x" * 70_000), "oversize"),
        ("bank.transactions", payload(), "schema_violation"),  # a balance is not a transaction
    ],
)
def test_checker_refuses_what_a_worker_would_dead_letter(source: str, raw: bytes, error: str) -> None:
    with pytest.raises(BadRecord) as refused:
        checker().customer(source, raw)
    assert refused.value.error == error


def test_checker_uses_the_rules_and_may_skip_the_clock() -> None:
    # cmb accepts no USD; with now=None the future is not checked (as simulate without --now).
    with pytest.raises(BadRecord):
        Checker(load_rules("cmb"), now=None).customer("bank.balances", payload(currency="USD"))
    far = payload(ts="2099-01-01T00:00:00+08:00")
    assert Checker(make_rules(), now=None).customer("bank.balances", far) == "C000007"


def test_vet_keys_by_the_fixed_payloads_customer_not_the_old_key() -> None:
    """A record dead-lettered for a missing customer_id carries no key (or the producer's
    wrong one): replayed as it was, it would land on another partition than the
    customer's state. The fixed payload's customer_id is the key."""
    records = [
        Republish("p.bank.balances", None, payload(), "bank.balances", 0),
        Republish("p.bank.balances", b"WRONG", payload(customer_id="C000008"), "bank.balances", 1),
    ]
    vetted = list(vet(records, checker()))
    assert [(r.topic, r.key) for r in vetted if isinstance(r, Republish)] == [
        ("p.bank.balances", b"C000007"),
        ("p.bank.balances", b"C000008"),
    ]


def test_check_file_names_still_bad_records_by_line() -> None:
    lines = [
        (0, dead_line(payload(), None)),
        (1, b"not json"),
        (2, dead_line(payload(balance="1,2O0.00"), "C000007")),
        (4, dead_line(payload(customer_id=None), "C000009", "bank.balances")),
    ]
    count, refused = check_file(lines, checker())
    assert count == 2
    assert [(r.line, r.customer, r.error) for r in refused] == [
        (2, "C000007", "bad_amount"),
        (4, "C000009", "schema_violation"),  # no id in the payload: the old key says whose it was
    ]
    assert (
        refused[0]
        .describe()
        .startswith(
            "line 3: the bank.balances record for customer C000007 is still bad (bad_amount: balance: "
        )
    )
    assert check_file(lines, checker(), keep=1)[0] == 2 and len(check_file(lines, checker(), keep=1)[1]) == 1


def test_vet_keeps_plan_order_and_line_numbers() -> None:
    lines = [(5, dead_line(payload(balance="x"), "C1")), (9, dead_line(payload(), None))]
    vetted = list(vet(plan(lines, DlqStats()), checker()))
    assert isinstance(vetted[0], Refused) and vetted[0].line == 5
    assert isinstance(vetted[1], Republish) and vetted[1].line == 9 and vetted[1].key == b"C000007"


def _cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tierstream.cli", "dlq", "replay", *args],
        capture_output=True,
        input=stdin,
        timeout=60,
    )


def test_cli_refuses_a_still_bad_record_before_touching_the_broker(tmp_path: Path) -> None:
    """Nothing is published: the broker named here does not even exist."""
    retry = tmp_path / "retry.jsonl"
    ok = payload(ts="2026-03-01T10:00:00+08:00")
    retry.write_bytes(
        dead_line(ok, None) + b"\n\n" + dead_line(payload(balance="1,2O0.00"), "C000007") + b"\n"
    )
    url = f"kafka://127.0.0.1:{free_port()}"
    result = _cli("--events", str(retry), "--broker", url, "--rules", "cmb")
    assert result.returncode == 2
    stderr = result.stderr.decode()
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith(
        f"tierstream: error: {retry} line 3: the bank.balances record for customer C000007 is still bad "
        "(bad_amount: balance: "
    )
    assert stderr.endswith(
        "fix the payload or drop the line (or pass --skip-invalid); nothing was published\n"
    )

    # Several: each is named, the error line counts the rest; a pipe is read once, checked the same.
    more = retry.read_bytes() + dead_line(payload(customer_id=None), None) + b"\n"
    result = _cli("--events", "/dev/stdin", "--broker", url, stdin=more)
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert lines[0].startswith("/dev/stdin line 4: the bank.balances record is still bad (schema_violation: ")
    assert lines[1].startswith("tierstream: error: /dev/stdin line 3: ") and "(and 1 more)" in lines[1]


def test_cli_skip_invalid_goes_on_to_publish(tmp_path: Path) -> None:
    retry = tmp_path / "retry.jsonl"
    retry.write_bytes(dead_line(payload(balance="1,2O0.00"), "C000007") + b"\n")
    url = f"kafka://127.0.0.1:{free_port()}"
    result = _cli("--events", str(retry), "--broker", url, "--skip-invalid")
    assert result.returncode == 2
    assert result.stderr.decode() == (
        f"tierstream: error: cannot reach the broker at {url}; start it or set TIERSTREAM_BROKER_URL\n"
    )
