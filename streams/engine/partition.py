"""One partition's engine: the clock, the customers, and the life of a record.

`PartitionEngine.process_*` takes one consumed record and returns every output it
causes (tier changes, opportunities, churn warnings, or a dead letter). The Faust
agents and `tierstream simulate` call exactly this.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any, Final

from . import decode as d
from .evaluate import DLQ, TIER_CHANGES, UNSET_QUIETLY, Evaluator, Output, series_specs
from .ledger import Customer, Ledger, fingerprint
from .portable import CustomerRecord, seed, to_record
from .rules import SEGMENT_NAMES, Rules
from .timeutil import Calendar

#: An oversize record's dead letter keeps only this much of its payload (docs/decisions.md).
DLQ_PAYLOAD_BYTES: Final = 4096


def _utf8_prefix(payload: bytes, size: int) -> bytes:
    """The first `size` bytes, shortened so a UTF-8 character is never cut in two."""
    cut = payload[:size]
    for back in range(4):
        try:
            (cut[: len(cut) - back] if back else cut).decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.reason != "unexpected end of data":
                return cut  # not UTF-8 anyway: kept as bytes (base64)
            continue
        return cut[: len(cut) - back] if back else cut
    return cut


APPLIED: Final = "applied"
DUPLICATE: Final = "duplicate"
DEAD_LETTER: Final = "dead_letter"
#: a sweep with `flush` set hands its outputs over in lists of at least this many
FLUSH_OUTPUTS: Final = 1024


class PartitionEngine:
    """The reference behaviour of SPEC §4 for one partition.

    `now` is the wall clock used for `future_timestamp` (None: never checked, as in
    `simulate` without `--now`); `wall` stamps `emitted_at`/`at`. With `eager` every
    known customer's day boundaries are evaluated as soon as the clock's day moves;
    without it they are caught up lazily (before the customer's next event, and by
    `sweep`), with the same outputs per customer.
    """

    def __init__(
        self,
        rules: Rules,
        *,
        now: Callable[[], int] | None = None,
        wall: Callable[[], int] | None = None,
        customers: MutableMapping[str, Customer] | None = None,
        eager: bool = True,
    ) -> None:
        self.rules = rules
        self.calendar = Calendar(rules.timezone)
        self.decoder = d.Decoder(rules.currencies)
        self.ledger = Ledger(series_specs(rules), rules.max_lateness_days)
        self.evaluator = Evaluator(rules, self.ledger, self.calendar)
        self.customers: MutableMapping[str, Customer] = {} if customers is None else customers
        self.now = now
        self.wall = wall
        self.evaluator.emitted_at = self._wall_text
        self.eager = eager
        self.clock: int | None = None
        self.clock_day: int | None = None
        self.outcomes: Counter[str] = Counter({APPLIED: 0, DUPLICATE: 0, DEAD_LETTER: 0})
        self.dead_letters: Counter[str] = Counter()
        self.outputs: Counter[str] = Counter()
        self.migrations: Counter[tuple[str, str]] = Counter()
        #: called with the old day just before the clock's day moves on (and before
        #: that move's boundary sweep): every customer is then as of that day.
        self.on_new_day: Callable[[int], None] | None = None
        #: In normal flow a duplicate's ts never passes the clock (its original was
        #: applied). After a crash, a redelivered record the stored state already holds
        #: *was* applied and moved the clock; the worker sets this so it moves it again.
        self.duplicates_move_clock = False
        self.home_bank = rules.home_bank
        self.lateness = rules.max_lateness_days
        #: when set, a sweep hands its outputs over in order as it goes (they are then not
        #: in the list the record's call returns): a sweep's outputs would otherwise all be
        #: held at once (`simulate`: a bank's first boundary gives every customer its
        #: segments, ~3 KB a customer at the peak).
        self.flush: Callable[[list[Output]], None] | None = None
        #: called with each applied event and its business day (`tierstream snapshot`
        #: keeps the applied records this way, so the warehouse files see what the engine saw)
        self.on_applied: Callable[[d.Event, int], None] | None = None

    def _wall_text(self) -> str:
        if self.wall is None:
            return ""
        return self.calendar.isoformat(self.wall())

    # ------------------------------------------------------------------ records
    def process_payload(
        self, topic: str, payload: bytes, *, partition: int = 0, offset: int = 0, key: str | None = None
    ) -> list[Output]:
        """A record as the broker carries it: size, then JSON, then the value."""
        try:
            value = d.read_payload(payload, self.rules.max_record_bytes)
        except d.BadRecord as bad:
            return [self.dead_letter(topic, partition, offset, key, payload, bad.error, bad.detail)]
        return self.process_value(topic, value, lambda: payload, partition=partition, offset=offset, key=key)

    def process_value(
        self,
        topic: str,
        value: Any,
        payload: Callable[[], bytes],
        *,
        partition: int = 0,
        offset: int = 0,
        key: str | None = None,
    ) -> list[Output]:
        """A parsed value (size and JSON already checked); `payload` rebuilds the raw
        bytes if the record must be dead-lettered."""
        out: list[Output] = []
        try:
            event = self.decoder.decode(topic, value)
            self._apply(event, out)
        except d.BadRecord as bad:
            if key is None:
                key = d.guess_customer(value)
            out.append(self.dead_letter(topic, partition, offset, key, payload(), bad.error, bad.detail))
        return out

    def dead_letter(
        self,
        topic: str | None,
        partition: int,
        offset: int,
        key: str | None,
        payload: bytes,
        error: str,
        detail: str,
    ) -> Output:
        """A dead-letter record (also for records refused before the engine, such as
        an unreadable event-file line)."""
        self.outcomes[DEAD_LETTER] += 1
        self.dead_letters[error] += 1
        self.outputs[DLQ] += 1
        if error == d.OVERSIZE and len(payload) > DLQ_PAYLOAD_BYTES:
            payload = _utf8_prefix(payload, DLQ_PAYLOAD_BYTES)
            detail = f"{detail} (payload: its first {len(payload):,} bytes)"
        try:
            text, encoding = payload.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(payload).decode("ascii"), "base64"
        value = {
            "source_topic": topic,
            "partition": partition,
            "offset": offset,
            "key": key,
            "payload": text,
            "payload_encoding": encoding,
            "error": error,
            "detail": detail,
            "at": self._wall_text(),
        }
        return (DLQ, key or "", value)

    # ------------------------------------------------------------------ apply
    def _apply(self, event: d.Event, out: list[Output]) -> None:
        cal = self.calendar
        ts = event.ts
        day = cal.day_of(ts)
        d.refuse_future(ts, self.now() if self.now is not None else None)
        lateness = self.lateness
        if self.clock_day is not None and self.clock_day - day > lateness:
            raise d.BadRecord(
                d.TOO_LATE,
                f"business day {cal.day_text(day)} is {self.clock_day - day} days behind the "
                f"partition clock ({cal.day_text(self.clock_day)}); max_lateness_days is {lateness}",
            )
        cid = event.customer_id
        customers = self.customers
        c = customers.get(cid)
        fp = fingerprint(event.event_id)
        # A record older than its customer's own lateness horizon that the partition
        # clock still lets in: only after a crash that wrote the customer's state ahead
        # of the partition marker. It was applied before the crash (later records that
        # old were too late), and its fingerprint may already be forgotten.
        if c is not None and (fp in c.seen or c.day - day > lateness):
            self.outcomes[DUPLICATE] += 1
            if self.duplicates_move_clock:
                self._move_clock(ts, day, out)
            return
        self.outcomes[APPLIED] += 1
        if self._move_clock(ts, day, out) and c is not None:
            c = customers[cid]  # read again: a sweep may have replaced it (PackedCustomers)
        target = self.clock_day
        assert target is not None
        ledger = self.ledger
        is_new = c is None
        if c is None:
            c = ledger.new_customer(day, ts)
            customers[cid] = c
        elif c.day < target:
            self.catch_up(cid, c, target, out)
        c.seen.add(fp, day)
        if isinstance(event, d.Balance):
            ledger.observe(c, event.account_id, day, ts, event.event_id, event.fen, event.liability)
        elif isinstance(event, d.Transaction):
            if event.balance_after is not None:
                ledger.observe(
                    c, event.account_id, day, ts, event.event_id, event.balance_after, event.liability
                )
            cp = event.counterparty_bank
            ledger.transaction(
                c, day, event.fen, event.debit, event.channel, cp is not None and cp != self.home_bank
            )
        else:
            ledger.profile(c, ts, event.event_id, event.attributes)
        if self.on_applied is not None:
            self.on_applied(event, day)
        instant = ts if ts > c.last_instant else c.last_instant
        c.last_instant = instant
        self._evaluate(cid, c, instant, out)
        if is_new and day < target:
            self.catch_up(cid, c, target, out)

    def _move_clock(self, ts: int, day: int, out: list[Output]) -> bool:
        """Move the clock to `ts`; True when its day moved (a sweep or `on_new_day` may
        then have read every customer)."""
        if self.clock is None or ts > self.clock:
            self.clock = ts
            if self.clock_day is None or day > self.clock_day:
                if self.on_new_day is not None and self.clock_day is not None:
                    self.on_new_day(self.clock_day)
                self.clock_day = day
                if self.eager:
                    self.sweep(out)
                return True
        return False

    def _evaluate(
        self, cid: str, c: Customer, instant: int, out: list[Output], *, boundary: bool = False
    ) -> None:
        before = len(out)
        evaluator = self.evaluator
        evaluator.evaluate(cid, c, instant, out)
        if boundary and evaluator.segment_steps:
            evaluator.segment_changes(cid, c, instant, out)
        if len(out) == before:  # the usual case: nothing to count
            return
        for topic, _, value in out[before:]:
            self.outputs[topic] += 1
            if topic == TIER_CHANGES:
                self.migrations[(value["from_tier"], value["to_tier"])] += 1

    # ------------------------------------------------------------------ time
    def catch_up(self, cid: str, c: Customer, day: int, out: list[Output]) -> None:
        """Evaluate the customer's day boundaries up to `day`, in order."""
        boundary = self.calendar.boundary
        while c.day < day:
            self.ledger.advance(c)
            instant = boundary(c.day)
            if instant > c.last_instant:
                c.last_instant = instant
            self._evaluate(cid, c, c.last_instant, out, boundary=True)

    def sweep(self, out: list[Output], ids: Iterable[str] | None = None) -> None:
        """Catch every (or the given) known customer up to the clock's day."""
        target = self.clock_day
        if target is None:
            return
        customers = self.customers
        flush = self.flush
        if ids is None and type(customers) is dict:
            # a plain dict hands its customers over with their ids (nothing a catch-up
            # does adds or drops one); a PackedCustomers is read one id at a time
            for cid, c in customers.items():
                if c.day < target:
                    self.catch_up(cid, c, target, out)
                    if flush is not None and len(out) >= FLUSH_OUTPUTS:
                        flush(out)
                        out.clear()
            return
        for cid in list(customers) if ids is None else ids:
            c = customers[cid]
            if c.day < target:
                self.catch_up(cid, c, target, out)
                if flush is not None and len(out) >= FLUSH_OUTPUTS:
                    flush(out)
                    out.clear()

    def advance_clock(self, instant: int) -> list[Output]:
        """Move the clock (live timer, or `simulate --until`); sweeps if eager."""
        out: list[Output] = []
        if self.clock is None or instant <= self.clock:
            return out
        self.clock = instant
        day = self.calendar.day_of(instant)
        if self.clock_day is None or day > self.clock_day:
            if self.on_new_day is not None and self.clock_day is not None:
                self.on_new_day(self.clock_day)
            self.clock_day = day
            if self.eager:
                self.sweep(out)
        return out

    # ------------------------------------------------------------------ go-live (SPEC §9)
    def start_at(self, clock: int) -> None:
        """Set the clock of a partition that starts from a snapshot (no outputs)."""
        self.clock = clock
        self.clock_day = self.calendar.day_of(clock)

    def seed(self, record: CustomerRecord) -> Customer:
        """An engine customer from a snapshot or export record (MissingHistory when the
        record does not cover these rules). Without a tier, or with one these rules do
        not have, the customer takes the qualified tier as of the record's day, with no
        output."""
        c = seed(record, self.ledger, self.rules.tier_ids)
        if record.tier not in self.rules.tier_ids:  # not given, or a tier the ladder dropped
            c.tier = self.evaluator.qualified(c)
            c.below_since = None
        if c.segments is not None:
            c.segments = self._held_segments(c.segments)
        return c

    def _held_segments(self, values: list[str | None]) -> list[str | None] | None:
        """Stored segment values these rules can hold: one they do not publish is dropped,
        one they cannot give (bands or names changed) is set again quietly."""
        segments = self.rules.segments
        held: list[str | None] = [None, None, None]
        if segments is None:
            return None
        for index, name in enumerate(SEGMENT_NAMES):
            value = values[index]
            if value is None or name not in segments.names:
                continue
            held[index] = value if value == UNSET_QUIETLY or segments.possible(name, value) else UNSET_QUIETLY
        return held if any(v is not None for v in held) else None

    def record(self, customer_id: str) -> CustomerRecord:
        return to_record(customer_id, self.customers[customer_id], self.ledger, self.rules.tier_ids)

    # ------------------------------------------------------------------ summary
    def segment_counts(self) -> dict[str, dict[str, int]]:
        """Customers per value of each published segment (those with a value set)."""
        counts: dict[str, Counter[str]] = {name: Counter() for name in self.rules.published_segments()}
        for c in self.customers.values():
            for index, name in enumerate(SEGMENT_NAMES):
                value = c.segments[index] if c.segments is not None else None
                if value and name in counts:
                    counts[name][value] += 1
        return {name: dict(sorted(n.items())) for name, n in counts.items()}

    def tier_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.rules.tier_ids, 0)
        ids = self.rules.tier_ids
        for c in self.customers.values():
            counts[ids[c.tier]] += 1
        return counts
