"""Go-live checks shared by unit and integration tests: cut an event file at the end of
a business day, and compare a run that starts from the snapshot with the full run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..engine.evaluate import Output
from ..engine.partition import PartitionEngine
from ..engine.rules import Rules
from ..golive.snapshot import record_instant

Lines = list[tuple[int, bytes]]


def event_key(line: bytes) -> tuple[Any, Any] | None:
    """(customer_id, event_id) of a line's record, if it has them."""
    try:
        value = json.loads(line).get("value")
        if isinstance(value, str):
            value = json.loads(value)
    except (ValueError, AttributeError):
        return None
    if isinstance(value, dict):
        return value.get("customer_id"), value.get("event_id")
    return None


def split(lines: Lines, end_of_day: int, drop_repeats: bool = True) -> tuple[Lines, Lines]:
    """The records before the first one dated after the day, and the rest; with
    `drop_repeats`, the rest leaves out redeliveries of events before the cut (SPEC §9's
    exactness condition for warehouse snapshots)."""
    cut = next(
        (i for i, (_, line) in enumerate(lines) if (record_instant(line) or 0) > end_of_day), len(lines)
    )
    head, rest = lines[:cut], lines[cut:]
    if drop_repeats:
        before = {event_key(line) for _, line in head} - {None}
        rest = [(n, line) for n, line in rest if event_key(line) not in before]
    return head, rest


def comparable(output: Output) -> tuple[Any, ...]:
    """An output without wall-clock fields or file positions."""
    topic, key, value = output
    if topic == "tierstream.dlq":
        return topic, key, value["error"], value["payload"]
    return topic, key, value["event_id"]


def per_customer(outputs: list[Output]) -> dict[str, list[tuple[Any, ...]]]:
    """Each customer's outputs in order. SPEC §4 fixes the order per customer; across
    customers a day-boundary sweep goes in the order customers were first seen, which a
    snapshot does not carry (its rows are sorted by id)."""
    grouped: dict[str, list[tuple[Any, ...]]] = {}
    for output in outputs:
        grouped.setdefault(output[1], []).append(comparable(output))
    return grouped


def state_fields(engine: PartitionEngine, cid: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """A customer's state as data: the rules-free record plus the running window sums."""
    record = engine.record(cid)
    fields = {k: v for k, v in vars(record).items() if k not in ("accounts", "seen", "last_instant", *skip)}
    c = engine.customers[cid]
    fields["sums"] = [s.sums for s in c.series]
    fields["attrs"] = {name: value for name, (_, _, value) in c.attrs.items()}
    return fields


def run_lines(
    rules: Rules, lines: Lines, engine: PartitionEngine | None = None
) -> tuple[PartitionEngine, list[Output]]:
    from tierstream.tools.simulate import simulate

    out: list[Output] = []
    engine = simulate(rules, lines, out.append, engine=engine)
    return engine, out


def reference_after_cut(
    rules: Rules, head: Lines, rest: Lines, end_of_day: int
) -> tuple[PartitionEngine, PartitionEngine, list[Output]]:
    """The full run: the engine at the cut-over (as of the end of the day) and after
    the rest, with the outputs after the cut-over."""
    at_cut, _ = run_lines(rules, head)
    at_cut.advance_clock(end_of_day)
    full, _ = run_lines(rules, head)
    full.advance_clock(end_of_day)
    outputs: list[Output] = []
    from tierstream.tools.simulate import simulate

    simulate(rules, rest, outputs.append, engine=full)
    return at_cut, full, outputs


def started(
    rules: Rules, directory: Path, as_of: str | None, make: Callable[[], PartitionEngine] | None = None
) -> PartitionEngine:
    from tierstream.golive.load import open_source, start_engine

    engine = make() if make is not None else PartitionEngine(rules)
    start_engine(engine, open_source(directory, rules, as_of))
    return engine
