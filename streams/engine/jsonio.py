"""JSON in and out without binary floats.

JSON numbers with a fraction or exponent parse to `JsonNumber`, a Decimal that keeps
its source text so a re-serialised payload is byte-faithful; `NaN`/`Infinity` are
refused (they are not JSON).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Final

import orjson

from .jsonnumber import JsonNumber as JsonNumber  # its own module: mypyc cannot compile it


class NotJson(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise NotJson(f"{name} is not JSON")


_decoder: Final = json.JSONDecoder(parse_float=JsonNumber, parse_constant=_refuse_constant)


def loads(text: str) -> Any:
    """Parse JSON text exactly; raise NotJson for anything that is not JSON.

    orjson first (5x faster): its result is exact unless it holds a float, and
    whatever it refuses (big integers, lone surrogates, errors) goes to the exact
    parser, which has the last word on what is JSON and why not.
    """
    try:
        fast = orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    else:
        if not _has_float(fast):
            return fast
    try:
        value, end = _decoder.raw_decode(text, _skip_ws(text, 0))
    except NotJson:
        raise
    except (ValueError, RecursionError) as exc:
        raise NotJson(str(exc)) from None
    if _skip_ws(text, end) != len(text):
        raise NotJson(f"extra data after the JSON value at char {end}")
    return value


def _has_float(value: Any) -> bool:
    """Whether orjson gave a float anywhere (it returns exact builtin types only, so
    `type(...) is` is exact; one loop per container, recursion only into containers:
    this runs on every input line)."""
    kind = type(value)
    if kind is float:
        return True
    if kind is dict:
        items = value.values()
    elif kind is list:
        items = value
    else:
        return False
    for v in items:
        kind = type(v)
        if kind is float or ((kind is dict or kind is list) and _has_float(v)):
            return True
    return False


def _skip_ws(text: str, pos: int) -> int:
    n = len(text)
    while pos < n and text[pos] in " \t\n\r":
        pos += 1
    return pos


def dumps_compact(value: Any) -> str:
    """Compact JSON (separators ',' ':'), non-ASCII kept, numbers as their source text."""
    return "".join(_compact(value))


def _compact(value: Any) -> list[str]:
    out: list[str] = []
    _write(value, out)
    return out


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append("{")
        first = True
        for k, v in value.items():
            if not first:
                out.append(",")
            first = False
            out.append(json.dumps(k, ensure_ascii=False))
            out.append(":")
            _write(v, out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _write(v, out)
        out.append("]")
    elif isinstance(value, JsonNumber):
        out.append(value.text)
    elif isinstance(value, Decimal):
        out.append(str(value))
    else:
        out.append(json.dumps(value, ensure_ascii=False))
