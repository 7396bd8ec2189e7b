"""jsonio.loads: the orjson fast path never changes what the exact parser decides."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tierstream.engine import jsonio
from tierstream.engine.jsonio import JsonNumber, NotJson, loads


def exact(text: str) -> Any:
    """The exact parser alone (the fast path switched off)."""
    value, end = jsonio._decoder.raw_decode(text, jsonio._skip_ws(text, 0))
    if jsonio._skip_ws(text, end) != len(text):
        raise ValueError("extra data")
    return value


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(lambda d: JsonNumber(str(d))),
    st.text(),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300)
@given(documents)
def test_fast_path_agrees_with_the_exact_parser(doc: Any) -> None:
    text = jsonio.dumps_compact(doc)
    got, want = loads(text), exact(text)
    assert got == want
    assert jsonio.dumps_compact(got) == jsonio.dumps_compact(want)  # same source text for numbers


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('{"amount": 12.50}', JsonNumber),  # a fraction stays exact text
        ('{"amount": 1e2}', JsonNumber),
        ('{"n": 123456789012345678901234567890}', int),  # beyond 64 bits: exact parser
        ('{"n": -5}', int),
    ],
)
def test_numbers_keep_their_exact_type(text: str, kind: type) -> None:
    value = next(iter(loads(text).values()))
    assert type(value) is kind
    assert value == next(iter(exact(text).values()))
    assert jsonio.dumps_compact(loads(text)) == text.replace(" ", "")  # byte-faithful


@pytest.mark.parametrize(
    "text", ["NaN", '{"a": Infinity}', '{"a": 1} x', "{", '{"a": -}', "", '"\\ud800', "[1,]"]
)
def test_what_is_not_json_is_refused(text: str) -> None:
    with pytest.raises(NotJson):
        loads(text)


def test_lone_surrogates_orjson_refuses_are_still_read_exactly() -> None:
    assert loads('"\\ud800"') == "\ud800"


def test_duplicate_keys_keep_the_last_value_on_both_paths() -> None:
    assert loads('{"a": 1, "a": 2}') == exact('{"a": 1, "a": 2}') == {"a": 2}
