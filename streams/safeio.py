"""Output files that a failed, refused or interrupted command never damages.

The one owner of "write to a temporary file beside the target and rename it over the
target at the end", "refuse an output that is also an input" and "check every output
path before the run starts". Every command that writes a file goes through here, so a
broker that is down, a Ctrl-C or a bad flag leaves the user's files exactly as they were.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

STDOUT = "-"


class OutputRefused(Exception):
    """An output path that cannot or must not be written; the message names the fix."""


@dataclass(frozen=True)
class Output:
    """One output a command will write: the flag that named it, and what it is."""

    flag: str
    path: Path | None
    kind: str = "file"  # "file", or "dir" for a folder the command writes files into
    suffixes: tuple[str, ...] = ()  # allowed suffixes (lower case, with the dot), if any


def is_stdout(path: Path | None) -> bool:
    return path is not None and str(path) == STDOUT


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _writable_dir(folder: Path, flag: str, target: Path) -> None:
    """Refuse unless a file can really be created in `folder` (permissions, read-only
    or pseudo file systems such as /proc): make one and remove it."""
    if not folder.exists():
        raise OutputRefused(f"{flag} {target}: the folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise OutputRefused(f"{flag} {target}: {folder} is not a folder")
    try:
        handle, probe = tempfile.mkstemp(prefix=".tierstream-probe-", dir=folder)
    except OSError as exc:
        raise OutputRefused(
            f"{flag} {target}: cannot write in {folder} ({exc.strerror}); choose another place"
        ) from None
    os.close(handle)
    os.unlink(probe)


def check_outputs(outputs: Iterable[Output], inputs: Iterable[Path] = ()) -> None:
    """Refuse, before any work, every output that could not be written at the end, that
    is also an input, or that two flags name. Raises OutputRefused."""
    sources = [p for p in inputs if p is not None and not is_stdout(p)]
    seen: list[tuple[str, Path]] = []
    for out in outputs:
        path = out.path
        if path is None or is_stdout(path):
            continue
        for source in sources:
            if _same(path, source):
                raise OutputRefused(
                    f"{out.flag} {path} is also the input {source}: writing it would destroy the input; "
                    "choose another output file"
                )
        for flag, other in seen:
            if _same(path, other):
                raise OutputRefused(f"{out.flag} {path} is also {flag}: give each output its own path")
        seen.append((out.flag, path))
        if out.suffixes and path.suffix.lower() not in out.suffixes:
            raise OutputRefused(
                f"{out.flag} {path}: unknown file type {path.suffix or '(none)'!r}; "
                f"end the name with one of {', '.join(out.suffixes)}"
            )
        if out.kind == "dir":
            if path.exists() and not path.is_dir():
                raise OutputRefused(f"{out.flag} {path} is a file, not a folder; give a folder to write into")
            existing = path
            while not existing.exists():
                existing = existing.parent
            _writable_dir(existing if existing.is_dir() else existing.parent, out.flag, path)
            continue
        if path.is_dir():
            raise OutputRefused(f"{out.flag} {path} is a folder; give a file name inside it")
        if path.exists() and not os.access(path, os.W_OK):
            raise OutputRefused(f"{out.flag} {path}: the file is read-only; choose another output file")
        _writable_dir(path.parent if str(path.parent) else Path("."), out.flag, path)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path`; renamed over `path` only if the block succeeds.

    On any failure or interruption the temporary file is removed and `path` is as it
    was (absent, or its old content); an interruption says so on stderr."""
    folder = path.parent if str(path.parent) else Path(".")
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=folder)
    os.close(handle)
    temp = Path(temp_name)
    try:
        yield temp
        _take_mode(temp, path)
        os.replace(temp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        if isinstance(exc, KeyboardInterrupt):
            state = "left as it was" if path.exists() else "not written"
            print(f"tierstream: interrupted: {path} {state}", file=sys.stderr, flush=True)
        raise


@contextlib.contextmanager
def atomic_text(path: Path | None) -> Iterator[TextIO]:
    """A text file written in one piece (see atomic_path); stdout for None or '-'."""
    if path is None or is_stdout(path):
        yield sys.stdout
        sys.stdout.flush()
        return
    with atomic_path(path) as temp, temp.open("w", encoding="utf-8") as sink:
        yield sink


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as temp:
        temp.write_text(text, "utf-8")


def _take_mode(temp: Path, path: Path) -> None:
    """The permissions the file would have had: the old file's, else 0666 less the umask
    (mkstemp makes 0600)."""
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(temp, mode)
