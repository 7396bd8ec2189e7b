"""The import rules of docs/architecture.md, read from every module's AST.

A module's room is the first folder under streams/ (`engine`, `worker`, `tools`, ...)
or, for a module at the top, its name."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

STREAMS = Path(__file__).resolve().parents[2] / "streams"

SHARED = {"settings", "broker", "serving", "preflight", "safeio", "contract", "enginebuild", "__init__"}

#: room -> the rooms it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "engine": set(),
    "contract": {"engine"},
    "shared": {"engine", "contract", "shared"},
    "worker": {"engine", "contract", "shared"},
    "tools": {"engine", "contract", "shared"},
    "golive": {"engine", "contract", "shared", "tools"},
    "cli": {"engine", "contract", "shared", "tools", "golive", "worker"},
    "testing": {"engine", "contract", "shared", "tools", "golive", "worker", "cli"},
    "presets": set(),
}

#: the documented exception: the worker serves the explain document
EXCEPTIONS = {("worker", "tools.explain")}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted under tierstream
    target: str  # the imported module, absolute (tierstream.x.y or a third-party name)
    names: tuple[str, ...]
    line: int


def module_name(path: Path, root: Path = STREAMS) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(("tierstream", *parts)).removesuffix(".__init__")


def imports(path: Path, root: Path = STREAMS) -> list[Import]:
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found += [Import(name, alias.name, (), node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names = tuple(alias.name for alias in node.names)
            if node.module is None:  # from . import x: x is a module of the package
                found += [Import(name, f"{target}.{n}", (), node.lineno) for n in names]
            else:
                found.append(Import(name, target, names, node.lineno))
    return found


def room(dotted: str) -> str:
    """The room of a tierstream module: tierstream.worker.merge -> worker."""
    first = dotted.split(".")[1] if "." in dotted else "__init__"
    return "shared" if first in SHARED - {"contract"} else first


def every_module() -> list[Path]:
    return sorted(STREAMS.rglob("*.py"))


def test_the_rooms_exist() -> None:
    for folder in ("engine", "worker", "tools", "cli", "testing"):
        assert (STREAMS / folder / "__init__.py").is_file(), folder
    assert (STREAMS / "contract.py").is_file()


def test_every_module_sits_in_a_known_room() -> None:
    stray = [m for p in every_module() if room(m := module_name(p)) not in ALLOWED]
    assert stray == [], "a new top-level module: put it in a room (docs/architecture.md)"


def wrong_arrows(path: Path, root: Path = STREAMS) -> list[str]:
    source = room(module_name(path, root))
    wrong = []
    for imp in imports(path, root):
        if not imp.target.startswith("tierstream.") or imp.target.startswith("tierstream.schemas"):
            continue
        target = room(imp.target)
        under = imp.target.removeprefix("tierstream.")
        if target == source or target in ALLOWED[source] or (source, under) in EXCEPTIONS:
            continue
        wrong.append(f"{imp.module}:{imp.line} imports {imp.target} ({source} may not import {target})")
    return wrong


@pytest.mark.parametrize("path", every_module(), ids=lambda p: str(p.relative_to(STREAMS)))
def test_imports_point_down(path: Path) -> None:
    assert wrong_arrows(path) == []


def test_nothing_outside_the_worker_imports_faust() -> None:
    wrong = [
        f"{imp.module}:{imp.line} imports {imp.target}"
        for path in every_module()
        for imp in imports(path)
        if imp.target.split(".")[0] in ("faust", "mode") and room(imp.module) != "worker"
    ]
    assert wrong == []


def test_private_faust_and_aiokafka_names_are_reached_only_in_compat() -> None:
    wrong = []
    for path in every_module():
        name = module_name(path)
        if name == "tierstream.worker.compat":
            continue
        for imp in imports(path):
            if imp.target.split(".")[0] in ("faust", "aiokafka", "mode") and any(
                n.startswith("_") for n in (*imp.names, *imp.target.split("."))
            ):
                wrong.append(f"{name}:{imp.line} imports a private name from {imp.target}")
        if room(name) == "worker":
            # the worker's other modules hold Faust objects: no private attribute on them
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr.startswith("_")
                    and not node.attr.startswith("__")
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls", "os"))
                ):
                    wrong.append(f"{name}:{node.lineno} reaches .{node.attr}")
    assert wrong == []


def test_the_pure_parts_of_the_worker_import_no_faust() -> None:
    for pure in ("merge", "commit", "store"):
        targets = {imp.target for imp in imports(STREAMS / "worker" / f"{pure}.py")}
        assert not any(t.split(".")[0] in ("faust", "mode", "aiokafka") for t in targets), pure


def test_nothing_at_runtime_imports_the_dev_harness() -> None:
    wrong = [
        f"{imp.module}:{imp.line} imports {imp.target}"
        for path in every_module()
        for imp in imports(path)
        if imp.target.startswith("tierstream.testing") and room(imp.module) != "testing"
    ]
    assert wrong == []


def test_the_checker_catches_a_wrong_arrow(tmp_path: Path) -> None:
    """The checker itself, on a made-up tree: a tool importing the worker, the engine
    importing the shell, and an allowed arrow."""
    (tmp_path / "tools").mkdir()
    (tmp_path / "engine").mkdir()
    tool = tmp_path / "tools" / "bad.py"
    tool.write_text("from ..worker.wiring import Worker\nfrom ..engine import codec\n")
    core = tmp_path / "engine" / "bad.py"
    core.write_text("from ..settings import Settings\n")
    assert wrong_arrows(tool, tmp_path) == [
        "tierstream.tools.bad:1 imports tierstream.worker.wiring (tools may not import worker)"
    ]
    assert wrong_arrows(core, tmp_path) == [
        "tierstream.engine.bad:1 imports tierstream.settings (engine may not import shared)"
    ]
