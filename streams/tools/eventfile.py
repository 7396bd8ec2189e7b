"""Reading event files (JSON lines) safely: bounded lines, a look at what the file is,
and progress on a terminal.

A line is read in bounded chunks, so a 200 MB line costs its first `max_line` bytes of
memory, not 1 GB: it comes out as an `OverlongLine` (the prefix, and the full size),
which the engine dead-letters as oversize without parsing it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

#: Lines longer than this are never held whole (see simulate.max_line_bytes).
DEFAULT_MAX_LINE = 16 * 1024 * 1024
_CHUNK = 1024 * 1024

_MAGIC = (
    (b"\x1f\x8b", "gzip-compressed: decompress it first (gunzip -k {path})"),
    (b"PK\x03\x04", "a zip archive: unzip it first"),
    (b"BZh", "bzip2-compressed: decompress it first (bunzip2 -k {path})"),
    (b"\xfd7zXZ\x00", "xz-compressed: decompress it first (unxz -k {path})"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed: decompress it first (unzstd {path})"),
)
_SHAPE = 'an event file holds one {"topic": ..., "value": {...}} JSON object per line'


class OverlongLine(bytes):
    """The first bytes of a line too long to hold; `size` is the whole line's length."""

    size: int

    def __new__(cls, prefix: bytes, size: int) -> OverlongLine:
        self = super().__new__(cls, prefix)
        self.size = size
        return self


def read_lines(stream: IO[bytes], max_line: int = DEFAULT_MAX_LINE) -> Iterator[tuple[int, bytes]]:
    """(0-based line number, line without its newline), blank lines skipped; a line over
    `max_line` bytes is an OverlongLine holding its first `max_line` bytes."""
    number = -1
    while True:
        raw = stream.readline(max_line + 1)
        if not raw:
            return
        number += 1
        if len(raw) > max_line and not raw.endswith(b"\n"):
            size = len(raw)
            while True:  # skip the rest of the line without keeping it
                rest = stream.readline(_CHUNK)
                size += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            yield number, OverlongLine(raw[:max_line], size - (1 if rest.endswith(b"\n") else 0))
            continue
        line = raw.rstrip(b"\r\n")
        if line.strip():
            yield number, line


def _head(stream: IO[bytes], size: int = 65536) -> bytes:
    peek = getattr(stream, "peek", None)
    if stream.seekable():
        where = stream.tell()
        head = stream.read(size)
        stream.seek(where)
        return head
    return peek(size)[:size] if callable(peek) else b""


def check_event_file(stream: IO[bytes], path: Any) -> tuple[str, str] | None:
    """("error" | "warning", message) when the file is plainly not an event file: compressed,
    binary or empty. Looks at the first 64 KiB only; the stream is left where it was."""
    head = _head(stream)
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return "error", f"{path} is {what.format(path=path)}; {_SHAPE}"
    if b"\x00" in head:
        return "error", f"{path} is a binary file, not JSON lines; {_SHAPE}"
    if not head.strip():
        return "warning", f"{path} holds no events (it is empty); {_SHAPE}"
    return None


def not_events_warning(path: Any, summary: dict[str, Any]) -> str | None:
    """After a run: every record was invalid JSON, so this is probably not an event file."""
    outcomes = summary["outcomes"]
    records = sum(outcomes.values())
    invalid = summary["dead_letters"].get("invalid_json", 0)
    if records and invalid == records:
        return (
            f"none of the {records:,} lines of {path} is JSON: is it an event file? "
            f"{_SHAPE} (every line was dead-lettered as invalid_json)"
        )
    return None


def progress_lines(
    lines: Iterable[tuple[int, bytes]], stream: IO[bytes], label: str
) -> Iterable[tuple[int, bytes]]:
    """The same lines, with a progress bar (by bytes read) on stderr when it is a terminal."""
    if not sys.stderr.isatty() or not stream.seekable():
        return lines
    try:
        total = os.fstat(stream.fileno()).st_size
    except (OSError, ValueError):
        return lines
    return _with_bar(lines, stream, label, total)


def _with_bar(
    lines: Iterable[tuple[int, bytes]], stream: IO[bytes], label: str, total: int
) -> Iterator[tuple[int, bytes]]:
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn(label), BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        for i, item in enumerate(lines):
            if i % 4096 == 0:
                bar.update(task, completed=stream.tell())
            yield item
