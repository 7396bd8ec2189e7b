"""Compact customer state: packed customers and huge amounts change no output."""

from __future__ import annotations

import io
from typing import Any

from hypothesis import HealthCheck, given, settings

from tests.reference.literal import reference_simulate
from tierstream.engine import codec
from tierstream.engine.jsonio import JsonNumber
from tierstream.engine.ledger import CUSTOMER_FIELDS
from tierstream.engine.packed import PackedCustomers, pack, unpack
from tierstream.engine.partition import PartitionEngine
from tierstream.engine.rules import load_rules, parse_rules
from tierstream.testing.book import BASE_RULES, Book, make_rules, run, strip_wall
from tierstream.testing.strategies import histories, ts
from tierstream.tools.generate import generate_events, write_events
from tierstream.tools.simulate import feed_line, simulate


def _bank(customers: int, days: int, seed: int) -> list[tuple[int, bytes]]:
    sink = io.StringIO()
    write_events(generate_events(customers, days, seed, None, noise=True, late=True, usd=True), sink)
    return list(enumerate(ln.encode("utf-8") for ln in sink.getvalue().splitlines()))


def _run(
    lines: list[tuple[int, bytes]], decoded: int, preset: str = "cmb"
) -> tuple[list[Any], PartitionEngine]:
    out: list[Any] = []
    engine = simulate(
        load_rules(preset), lines, lambda o: out.append((o[0], o[1], strip_wall(o[2]))), decoded=decoded
    )
    return out, engine


def _states(engine: PartitionEngine) -> dict[str, bytes]:
    specs = engine.ledger.specs
    return {cid: codec.encode(engine.customers[cid], specs) for cid in engine.customers}


def test_a_bank_held_packed_gives_the_same_outputs_and_states() -> None:
    lines = _bank(40, 50, seed=5)
    plain_out, plain = _run(lines, decoded=1_000)
    packed_out, packed = _run(lines, decoded=3)
    assert type(plain.customers) is dict and isinstance(packed.customers, PackedCustomers)
    assert len(plain_out) > 100 and packed_out == plain_out
    assert list(packed.customers) == list(plain.customers)  # first seen first: the sweep order
    assert _states(packed) == _states(plain)
    assert packed.tier_counts() == plain.tier_counts()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_random_histories_held_packed_give_the_same_outputs(lines: list[bytes]) -> None:
    rules = make_rules(grace=2, dormant=15, churn_cooldown=3, opp_cooldown=3, lateness=3)
    numbered = list(enumerate(lines))
    outs = []
    for decoded in (100, 1):
        out: list[Any] = []
        simulate(rules, numbered, out.append, wall=lambda: 0, decoded=decoded)
        outs.append(out)
    assert outs[0] == outs[1]


def test_packing_keeps_every_field_exactly() -> None:
    engine = PartitionEngine(load_rules("cmb"))
    book = Book()
    for day in range(12):
        book.balance(ts(day, 3600), f"{100000 + day}.00", account="A1")
        book.balance(ts(day, 3700), "2500.00", account="A2", product="loan")
        book.txn(ts(day, 7200), "12.00", channel="pos", account="A1", balance_after=f"{99000 + day}.00")
    book.profile(ts(3, 60), segment="mass", household_income=150000, high_end_card=False)
    book.raw(
        "bank.profiles",
        f'{{"event_id": "p9", "customer_id": "A", "ts": "{ts(4, 60)}", "attributes": {{"score": 1.50}}}}',
    )
    for i, line in enumerate(book.encoded()):
        feed_line(engine, i, line)
    c = engine.customers["A"]
    assert isinstance(c.attr("score"), JsonNumber)
    back = unpack(pack(c), engine.ledger.layout)
    for name in CUSTOMER_FIELDS:
        if name not in ("seen", "peak", "peak_day"):  # the peak is a cache, read again
            assert getattr(back, name) == getattr(c, name), name
    assert list(back.seen.items()) == list(c.seen.items())
    assert back.attrs == c.attrs and isinstance(back.attr("score"), JsonNumber)
    assert back.attr("score").text == "1.50"  # type: ignore[attr-defined]
    assert back.accounts == c.accounts and back.series[0].ring == c.series[0].ring
    specs = engine.ledger.specs
    assert codec.encode(back, specs) == codec.encode(c, specs)


def test_the_store_reads_as_a_mapping() -> None:
    lines = _bank(6, 5, seed=1)
    _, engine = _run(lines, decoded=2)
    store = engine.customers
    assert isinstance(store, PackedCustomers)
    assert len(store) == 6 and sum(isinstance(v, bytes) for v in store.held.values()) == 4
    first = next(iter(store))
    assert first in store and store.get("nobody") is None and store.get(first) is store[first]
    assert store.packed_bytes() > 0


def test_amounts_past_64_bits_are_exact() -> None:
    """Rings and observations widen to Python ints; the reference agrees."""
    text = BASE_RULES % {"grace": 2, "opp_cooldown": 3, "dormant": 30, "churn_cooldown": 3, "lateness": 3}
    book = Book()
    for day in range(6):
        book.balance(ts(day, 3600), f"{10**20 + day}.00", account="A1")
        book.balance(ts(day, 3700), "5.00", account="A2")
        book.txn(ts(day, 7200), f"{10**19}.00", channel="pos", account="A2", counterparty_bank="ICBC")
    book.balance(ts(4, 100), f"{3 * 10**20}.00", account="A1")  # late, inside the window
    lines = book.encoded()
    got, engine = run(parse_rules(text, "t"), lines)
    expected, _ = reference_simulate(text, [ln.decode() for ln in lines])
    assert [(t, v["customer_id"], v["event_id"]) for t, v in got] == [
        (o["topic"], o["value"]["customer_id"], o["value"]["event_id"]) for o in expected
    ]
    c = engine.customers["A"]
    assert type(c.rings) is list and type(c.obs) is list
    assert unpack(pack(c), engine.ledger.layout).accounts == c.accounts


def test_a_full_table_of_shared_tuples_packs_them_whole(monkeypatch: Any) -> None:
    from tierstream.engine import packed as module

    lines = _bank(4, 3, seed=2)
    _, engine = _run(lines, decoded=1_000)
    monkeypatch.setattr(module, "_TABLE_LIMIT", 0)
    monkeypatch.setattr(module, "_TUPLES", {})
    for c in engine.customers.values():
        back = unpack(pack(c), engine.ledger.layout)
        assert back.attr_names == c.attr_names and back.segments == c.segments


def test_ids_with_and_without_a_common_prefix_pack_exactly() -> None:
    from tierstream.engine import packed as module

    spread = "9f1c\n0a77-x\n\U0010ffff"
    assert module._ids_out(spread) == spread and module._ids_in(spread) == spread
    numbered = "TXN-2026-00041\nTXN-2026-00042\nTXN-2026-0004"
    assert module._ids_in(module._ids_out(numbered)) == numbered
    engine = PartitionEngine(load_rules("cmb"))
    for i, line in enumerate(Book().balance(ts(0, 60), "10.00").balance(ts(1, 60), "20.00").encoded()):
        feed_line(engine, i, line)
    c = engine.customers["A"]
    c.seen.add(12345, c.day - 300)
    back = unpack(pack(c), engine.ledger.layout)
    assert list(back.seen.items()) == list(c.seen.items())
