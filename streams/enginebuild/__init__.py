"""Which build of the engine runs: the mypyc-compiled modules when they were built from
exactly the current sources, else the pure-Python modules (the reference).

`make compile` (`enginebuild.builder`) compiles the modules named in COMPILED into
`<venv>/tierstream-compiled/`, beside a manifest holding each source's sha256. Nothing is
written next to the sources, so an import of `tierstream.engine.X` finds the `.py` file
unless `select` put a finder in front of it, and `select` does that only when every
recorded hash matches the `.py` file Python would import now. An edited source therefore
runs as pure Python (with a one-line warning), never as stale compiled code.

`import tierstream` calls `select` once, before any engine module can be imported: the
choice has to precede the first import of an engine module (a compiled module calls its
compiled siblings natively, so a process never mixes the two builds), and that is why it
reads TIERSTREAM_ENGINE_BUILD here rather than through `Settings`, which imports the engine
itself (`Settings.engine_build` names and documents the variable; a test keeps the two
the same). Only the standard library is imported here.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

#: the engine modules compiled, under tierstream.engine: the hot ones in a profile of
#: `simulate` (decisions 72, 80, 100-101); any engine module that mypyc accepts may be listed
COMPILED = ("ledger", "evaluate", "partition", "decode", "money", "timeutil", "feed", "jsonio", "codec")

ENV_VAR = "TIERSTREAM_ENGINE_BUILD"
MODES = ("auto", "pure", "compiled")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
#: the name of the shared library holding every compiled module's code (`<group>__mypyc`)
GROUP = "tierstream_engine"
RUNTIME = f"{GROUP}__mypyc"
ENGINE_PACKAGE = "tierstream.engine"
#: the engine's sources as Python imports them (in the editable link tree, links to streams/engine)
ENGINE_DIR = Path(__file__).resolve().parent.parent / "engine"

log = logging.getLogger(__name__)


def compiled_dir() -> Path:
    """Where the compiled build lives: in the environment whose interpreter it was built for."""
    return Path(sys.prefix) / "tierstream-compiled"


def source_file(module: str) -> Path:
    """The `.py` file of an engine module (short name: `ledger`)."""
    return ENGINE_DIR / f"{module}.py"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shown(path: Path) -> str:
    """A path as a person would type it from here."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path.resolve())


@dataclass(frozen=True)
class EngineBuild:
    """The build this process runs and why."""

    compiled: bool
    mode: str  # what TIERSTREAM_ENGINE_BUILD asked for
    detail: str  # compiled: what; pure: why

    @property
    def name(self) -> str:
        return "compiled" if self.compiled else "pure"

    @property
    def problem(self) -> str | None:
        """A one-line refusal when the setting cannot be honoured, else None."""
        if self.mode not in MODES:
            return f"{ENV_VAR}={self.mode!r}: expected one of {', '.join(MODES)}"
        if self.mode == "compiled" and not self.compiled:
            return f"{ENV_VAR}=compiled, but {self.detail}; run `make compile`, or unset {ENV_VAR}"
        return None

    def __str__(self) -> str:
        return f"{'compiled' if self.compiled else 'pure Python'} ({self.detail})"


@dataclass(frozen=True)
class Manifest:
    """What `make compile` built: module -> (extension file, sha256 of the source compiled)."""

    modules: dict[str, tuple[str, str]]
    runtime: str  # the shared library's file name
    ext_suffix: str
    mypyc: str

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        """Raises ValueError when the manifest is missing or not one this code wrote."""
        try:
            raw: Any = json.loads((directory / MANIFEST).read_text("utf-8"))
            if raw.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"manifest format {raw.get('format')!r}, expected {MANIFEST_FORMAT}")
            modules = {str(m): (str(v["file"]), str(v["source_sha256"])) for m, v in raw["modules"].items()}
            return cls(modules, str(raw["runtime"]), str(raw["ext_suffix"]), str(raw["mypyc"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{shown(directory / MANIFEST)}: {exc}") from None

    def stale(self) -> list[str]:
        """The compiled modules whose current source differs from the one compiled."""
        return [m for m, (_, digest) in self.modules.items() if _current_sha256(m) != digest]


def _current_sha256(module: str) -> str | None:
    try:
        return sha256(source_file(module))
    except OSError:
        return None


def refusal(directory: Path, loaded: Collection[str]) -> str | None:
    """Why the compiled build in `directory` must not run in this process, or None.

    `loaded` is what is already imported: an engine module imported as pure Python
    before the choice would be mixed with compiled ones."""
    if not (directory / MANIFEST).exists():
        return "no compiled build: `make compile` builds one"
    try:
        manifest = Manifest.read(directory)
    except ValueError as exc:
        return f"the compiled build is unreadable: {exc}"
    if manifest.ext_suffix != importlib.machinery.EXTENSION_SUFFIXES[0]:
        return (
            f"the compiled build is for another Python: {manifest.ext_suffix}, this one loads "
            f"{importlib.machinery.EXTENSION_SUFFIXES[0]}"
        )
    if manifest.runtime != f"{RUNTIME}{manifest.ext_suffix}":
        return f"the compiled build's shared library is {manifest.runtime}, not {RUNTIME}: rebuild it"
    files = [manifest.runtime, *(file for file, _ in manifest.modules.values())]
    missing = [file for file in files if not (directory / file).is_file()]
    if missing:
        return f"the compiled build is incomplete: {shown(directory / missing[0])} is missing"
    stale = manifest.stale()
    if stale:
        changed = ", ".join(shown(source_file(m)) for m in stale)
        return f"the compiled build is stale: {changed} changed since `make compile`"
    names = [f"{ENGINE_PACKAGE}.{m}" for m in manifest.modules] + [RUNTIME]
    imported = [name for name in names if name in loaded]
    if imported:
        return f"{imported[0]} was imported before the engine build was chosen"
    return None


class _CompiledFinder:
    """A meta-path finder of exactly the compiled modules (and their shared library), at their
    files (not an importlib.abc subclass: that import costs importlib.resources)."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        file = self.files.get(fullname)
        return None if file is None else importlib.util.spec_from_file_location(fullname, file)


def _activate(directory: Path) -> str | None:
    """Put the compiled modules in front of the `.py` files; load their shared library now,
    so a build that cannot load falls back before any engine module is imported. Returns
    why it failed, or None."""
    manifest = Manifest.read(directory)
    files = {f"{ENGINE_PACKAGE}.{m}": directory / file for m, (file, _) in manifest.modules.items()}
    finder = _CompiledFinder({RUNTIME: directory / manifest.runtime, **files})
    sys.meta_path.insert(0, finder)
    try:
        importlib.import_module(RUNTIME)
    except (ImportError, OSError) as exc:
        sys.meta_path.remove(finder)
        sys.modules.pop(RUNTIME, None)
        return f"the compiled build did not load: {exc}"
    return None


def choose(mode: str, directory: Path, loaded: Collection[str]) -> EngineBuild:
    """The build to run for this setting, activating the compiled one when it is chosen."""
    if mode not in MODES:
        return EngineBuild(False, mode, f"{ENV_VAR}={mode!r} is not one of {', '.join(MODES)}")
    if mode == "pure":
        return EngineBuild(False, mode, f"{ENV_VAR}=pure")
    why = refusal(directory, loaded)
    if why is None:
        why = _activate(directory)
    if why is None:
        manifest = Manifest.read(directory)
        return EngineBuild(True, mode, f"mypyc {manifest.mypyc}: {', '.join(sorted(manifest.modules))}")
    if (directory / MANIFEST).exists() or mode == "compiled":
        # A build someone made and cannot have now: say so once, on stderr.
        log.warning("tierstream: running the pure-Python engine: %s", why)
    return EngineBuild(False, mode, why)


_selected: EngineBuild | None = None


def select() -> EngineBuild:
    """Choose this process's engine build once (`import tierstream` does), from the setting."""
    global _selected
    if _selected is None:
        _selected = choose(os.environ.get(ENV_VAR, "auto"), compiled_dir(), set(sys.modules))
    return _selected


def current() -> EngineBuild:
    """The build this process runs."""
    return select()
