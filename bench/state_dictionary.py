"""Train the zstd dictionary of stored customer states, and show what it buys.

A state is a ~1-2 KB JSON document compressed alone, so most of each frame goes to
describing structure every state shares; a dictionary trained on states carries that
once (docs/decisions.md 138). This trains one on the states `simulate` leaves for
generated banks under every preset and several history lengths, then prints bytes and
encode time per state for each preset and length, without and with it:

    .venv/bin/python -m bench.state_dictionary                 # figures only
    .venv/bin/python -m bench.state_dictionary --write PATH    # and write the trained one

A shipped dictionary is never replaced: states written with it are read with it for
as long as they exist. A better one gets a new id and file, and `codec` keeps reading
the old one (`codec.DICTIONARIES`).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

import orjson
import zstandard

from bench.bootstrap import calibration
from tierstream.engine import codec
from tierstream.engine.rules import load_rules
from tierstream.tools.generate import generate_events, write_events
from tierstream.tools.simulate import read_lines, simulate

PRESETS = ("cmb", "psbc", "ccb", "spdb")
DAYS = (2, 10, 40, 120)


def states(preset: str, customers: int, days: int, seed: int) -> list[bytes]:
    """The uncompressed state documents `simulate` leaves for a generated bank."""
    text = io.StringIO()
    write_events(generate_events(customers, days, seed=seed, usd=False), text)
    lines = list(read_lines(io.BytesIO(text.getvalue().encode("utf-8"))))
    engine = simulate(load_rules(preset), lines, lambda _: None)
    return [orjson.dumps(codec.document(c)) for c in engine.customers.values()]


def per_state(compressor: zstandard.ZstdCompressor, docs: list[bytes]) -> tuple[float, float]:
    """(mean bytes, µs) a state, best of three."""
    fn = compressor.compress
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        out = [fn(d) for d in docs]
        best = min(best, time.perf_counter() - start)
    return statistics.mean(map(len, out)), best / len(docs) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="write the trained dictionary here")
    parser.add_argument("--size", type=int, default=codec.DICTIONARY_BYTES, help="dictionary bytes")
    args = parser.parse_args()
    print(f"calibration: a 20-million-step Python loop took {calibration():.2f} s")
    training: list[bytes | bytearray | memoryview] = []
    held_out: dict[tuple[str, int], list[bytes]] = {}
    for preset in PRESETS:
        for days in DAYS:
            training.extend(states(preset, 300, days, seed=1))  # trained on one bank,
            held_out[(preset, days)] = states(preset, 300, days, seed=2)  # measured on another
    trained = zstandard.train_dictionary(args.size, training, dict_id=codec.DICTIONARY_ID, level=codec.LEVEL)
    with_dict = zstandard.ZstdCompressor(level=codec.LEVEL, dict_data=trained)
    plain = zstandard.ZstdCompressor(level=codec.LEVEL)
    print(f"trained on {len(training):,} states: {len(trained.as_bytes()):,} bytes, id {trained.dict_id()}")
    print(
        f"{'preset':6s} {'days':>4s} {'raw B':>7s} {'zstd B':>7s} {'dict B':>7s} {'zstd µs':>8s} {'dict µs':>8s}"
    )
    for (preset, days), docs in held_out.items():
        raw = statistics.mean(map(len, docs))
        (b0, t0), (b1, t1) = per_state(plain, docs), per_state(with_dict, docs)
        print(f"{preset:6s} {days:4d} {raw:7.0f} {b0:7.0f} {b1:7.0f} {t0:8.1f} {t1:8.1f}")
    if args.write is not None:
        if args.write.exists():
            raise SystemExit(
                f"{args.write} exists: a shipped dictionary is never replaced (see the docstring)"
            )
        args.write.write_bytes(trained.as_bytes())
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
