"""`make compile`: the engine modules of COMPILED, compiled with this environment's mypyc.

    .venv/bin/python -m tierstream.enginebuild.builder [--force] [--check]

The sources are copied to a scratch folder first and their sha256 taken from the copies,
so the manifest names exactly what was compiled; the finished build replaces the old
one in one rename, so a failed build leaves the previous one as it was. A build that is
already fresh (same sources, module list, Python and mypyc) is not redone.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.machinery
import json
import os
import shutil
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import (
    COMPILED,
    ENGINE_DIR,
    ENGINE_PACKAGE,
    GROUP,
    MANIFEST,
    MANIFEST_FORMAT,
    RUNTIME,
    Manifest,
    compiled_dir,
    refusal,
    sha256,
    shown,
    source_file,
)


class BuildError(Exception):
    """The build did not finish: one line, the previous build left in place."""


def mypyc_version() -> str:
    from mypy.version import __version__

    return __version__


def up_to_date(directory: Path, modules: Sequence[str] = COMPILED) -> str | None:
    """Why `directory` needs a (re)build, or None when it holds these modules compiled from
    the current sources by this mypyc."""
    why = refusal(directory, loaded=())
    if why is not None:
        return why
    manifest = Manifest.read(directory)
    if sorted(manifest.modules) != sorted(modules):
        return f"built for the modules {', '.join(sorted(manifest.modules))}"
    if manifest.mypyc != mypyc_version():
        return f"built with mypyc {manifest.mypyc}, this environment has {mypyc_version()}"
    return None


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _compile(stage: Path, modules: Sequence[str], lib: Path) -> None:
    """mypyc to C, then the C extensions built into `lib` (not beside the sources)."""
    from mypyc.build import mypycify
    from setuptools import Distribution

    with _cwd(stage / "src"):
        try:
            extensions = mypycify(
                [f"tierstream/engine/{m}.py" for m in modules],
                group_name=GROUP,
                target_dir=str(stage / "c"),
            )
        except SystemExit as exc:  # mypyc prints the type errors, then exits
            raise BuildError(
                f"mypyc refused the engine (its messages above name tierstream/engine/<module>.py, "
                f"i.e. streams/engine/<module>.py), exit {exc.code}"
            ) from None
        distribution: Any = Distribution({"name": "tierstream-compiled", "ext_modules": extensions})
        command: Any = distribution.get_command_obj("build_ext")
        command.build_lib, command.build_temp, command.inplace = str(lib), str(stage / "tmp"), False
        command.ensure_finalized()
        command.run()


def manifest_of(digests: dict[str, str], seconds: float) -> dict[str, Any]:
    """The manifest of a build of these modules (short name -> sha256 of the source compiled)."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    return {
        "format": MANIFEST_FORMAT,
        "modules": {
            m: {"file": f"tierstream/engine/{m}{suffix}", "source_sha256": d} for m, d in digests.items()
        },
        "runtime": f"{RUNTIME}{suffix}",
        "package": ENGINE_PACKAGE,
        "ext_suffix": suffix,
        "python": sys.version.split()[0],
        "mypyc": mypyc_version(),
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "build_seconds": round(seconds, 1),
    }


def build(directory: Path, modules: Sequence[str] = COMPILED) -> dict[str, Any]:
    """Compile `modules` into `directory` (replacing what was there); returns the manifest."""
    started = time.perf_counter()
    directory.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        package = stage / "src" / "tierstream" / "engine"
        package.mkdir(parents=True)
        (package.parent / "__init__.py").write_text("", "utf-8")
        # Every engine module is copied (mypy reads the ones not compiled for their types).
        for path in ENGINE_DIR.glob("*.py"):
            shutil.copyfile(path, package / path.name)
        digests = {m: sha256(package / f"{m}.py") for m in modules}
        lib = stage / "lib"
        _compile(stage, modules, lib)
        changed = [m for m in modules if sha256(source_file(m)) != digests[m]]
        if changed:
            raise BuildError(f"{shown(source_file(changed[0]))} changed during the build: run it again")
        manifest = manifest_of(digests, time.perf_counter() - started)
        (lib / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
        Manifest.read(lib)  # the reader accepts what was written
        old = stage / "old"
        if directory.exists():
            directory.rename(old)
        lib.rename(directory)
        return manifest
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="build even when the build is fresh")
    parser.add_argument(
        "--check", action="store_true", help="only say whether the build is fresh (exit 1 if not)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="where the build goes [<venv>/tierstream-compiled]"
    )
    args = parser.parse_args(argv)
    directory: Path = args.out or compiled_dir()
    why = up_to_date(directory)
    if args.check:
        print(f"compiled engine: {why or 'fresh'}")
        raise SystemExit(0 if why is None else 1)
    if why is None and not args.force:
        print(f"compiled engine: fresh in {shown(directory)} (--force rebuilds)")
        return
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        print(
            f"tierstream: error: no C compiler ({compiler}): the compiled engine needs one (gcc)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    print(f"compiling the engine with mypyc ({why or 'forced'}); about 30 s")
    try:
        manifest = build(directory)
    except BuildError as exc:
        print(f"tierstream: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(
        f"compiled {', '.join(manifest['modules'])} with mypyc {manifest['mypyc']} into "
        f"{shown(directory)} in {manifest['build_seconds']} s"
    )


if __name__ == "__main__":
    main()
