"""Event-file lines through one engine: the loop `tierstream simulate` runs per line.

It sits in the engine (and in `enginebuild.COMPILED`) so the per-line work between
reading a line and the engine's own (UTF-8, JSON, the envelope's checks, the outputs
handed on) runs compiled with the rest. `tools.simulate` owns the lines that cannot be
read whole (`OverlongLine`, any `bytes` subclass), passed in as `other`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from . import decode as d
from .evaluate import Output
from .jsonio import NotJson, dumps_compact, loads
from .packed import PackedCustomers
from .partition import PartitionEngine

Feed = Callable[[PartitionEngine, int, bytes], list[Output]]


def feed_line(engine: PartitionEngine, number: int, line: bytes) -> list[Output]:
    """One event-file line (read whole) through the engine, exactly as the broker record
    it names."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [
            engine.dead_letter(
                None, 0, number, None, line, d.INVALID_JSON, f"line is not UTF-8: {exc.reason}"
            )
        ]
    try:
        doc = loads(text)
    except NotJson as exc:
        return [engine.dead_letter(None, 0, number, None, line, d.INVALID_JSON, f"line is not JSON: {exc}")]
    if not isinstance(doc, dict):
        return _no_input_topic(engine, number, line, None, None)
    topic = doc.get("topic")
    if not isinstance(topic, str) or topic not in d.INPUT_TOPICS or "value" not in doc:
        return _no_input_topic(engine, number, line, topic, doc.get("value"))
    value = doc["value"]
    if isinstance(value, str):
        # A lone surrogate ("\ud800") is not UTF-8: keep its bytes, as a broken producer
        # would send them, so the record is dead-lettered rather than crashing the run.
        return engine.process_payload(
            topic, value.encode("utf-8", "surrogatepass"), partition=0, offset=number, key=d.guess_key(value)
        )
    compact = _Compact(value)
    # The compact form is never longer than the line, so most lines need no re-encoding.
    limit = engine.rules.max_record_bytes
    if len(line) > limit:
        raw = compact()
        if len(raw) > limit:
            return [
                engine.dead_letter(
                    topic,
                    0,
                    number,
                    d.guess_customer(value),
                    raw,
                    d.OVERSIZE,
                    f"record of {len(raw)} bytes exceeds max_record_bytes {limit}",
                )
            ]
    return engine.process_value(topic, value, compact, partition=0, offset=number)


class _Compact:
    """The record's bytes as a producer would send them, built only when asked."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self) -> bytes:
        return dumps_compact(self.value).encode("utf-8")


def _no_input_topic(
    engine: PartitionEngine, number: int, line: bytes, topic: Any, value: Any
) -> list[Output]:
    """A JSON line that names no input topic with a value: oversize or schema_violation."""
    payload = (
        value.encode("utf-8")
        if isinstance(value, str)
        else dumps_compact(value).encode("utf-8")
        if value is not None
        else line
    )
    limit = engine.rules.max_record_bytes
    error, detail = (
        (d.OVERSIZE, f"record of {len(payload)} bytes exceeds max_record_bytes {limit}")
        if len(payload) > limit
        else (
            d.SCHEMA_VIOLATION,
            f"the line names no input topic ({', '.join(d.INPUT_TOPICS)}) with a value",
        )
    )
    return [
        engine.dead_letter(
            topic if isinstance(topic, str) else None,
            0,
            number,
            d.guess_customer(value),
            payload,
            error,
            detail,
        )
    ]


def feed_lines(
    engine: PartitionEngine,
    lines: Iterable[tuple[int, bytes]],
    emit: Callable[[Output], None],
    other: Feed,
    decoded: int,
) -> None:
    """Every line through the engine, each output to `emit` in order; a line that is not
    plain `bytes` goes to `other`. Once the engine holds more than `decoded` customers in
    a dict, they move to a PackedCustomers keeping that many decoded."""
    packed = type(engine.customers) is not dict
    for number, line in lines:
        outputs = feed_line(engine, number, line) if type(line) is bytes else other(engine, number, line)
        for output in outputs:
            emit(output)
        if not packed and len(engine.customers) > decoded:
            engine.customers = PackedCustomers(engine.ledger.layout, decoded, engine.customers)
            packed = True
