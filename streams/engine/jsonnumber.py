"""`JsonNumber`, alone in a module: a Decimal subclass with its own `__new__`, which mypyc
cannot compile, so `jsonio` (compiled) imports it from here (pure Python in both builds)."""

from __future__ import annotations

from decimal import Decimal


class JsonNumber(Decimal):
    """A JSON number with its original text."""

    text: str

    def __new__(cls, text: str) -> JsonNumber:
        self = super().__new__(cls, text)
        self.text = text
        return self
