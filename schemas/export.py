"""Write the JSON Schema of every topic to ``schemas/json/<topic>.schema.json``.

    python -m tierstream.schemas.export           # (re)write the files
    python -m tierstream.schemas.export --check   # exit 1 if any file is stale

The files are committed: consumers read them without installing tierstream.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .models import ALL_MODELS

#: The committed schema files, beside this module in the source tree.
JSON_DIR = Path(__file__).resolve().parent / "json"
SUFFIX = ".schema.json"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _one_line_descriptions(node: Any) -> Any:
    """Docstrings wrap; a description is one paragraph."""
    if isinstance(node, dict):
        return {
            k: " ".join(v.split()) if k == "description" and isinstance(v, str) else _one_line_descriptions(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_one_line_descriptions(v) for v in node]
    return node


def schema_of(topic: str) -> dict[str, Any]:
    """The JSON Schema of one topic's values."""
    schema: dict[str, Any] = _one_line_descriptions(ALL_MODELS[topic].model_json_schema())
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


def render() -> dict[str, str]:
    """File name -> JSON text, for every topic."""
    return {
        f"{topic}{SUFFIX}": json.dumps(schema_of(topic), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        for topic in ALL_MODELS
    }


def stale_files(directory: Path, rendered: dict[str, str]) -> list[str]:
    """Names of files that differ from `rendered`, are missing, or are left over."""
    stale = []
    for name, text in rendered.items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    if directory.is_dir():
        stale += sorted(p.name for p in directory.glob(f"*{SUFFIX}") if p.name not in rendered)
    return sorted(stale)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tierstream.schemas.export",
        description="Write the JSON Schema of every tierstream topic.",
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is stale")
    parser.add_argument("--dir", type=Path, default=JSON_DIR, help=f"output directory (default: {JSON_DIR})")
    args = parser.parse_args(argv)
    directory: Path = args.dir
    rendered = render()
    stale = stale_files(directory, rendered)
    if args.check:
        if stale:
            print(
                f"stale JSON Schema files in {directory} (run `make schemas`): {', '.join(stale)}",
                file=sys.stderr,
            )
            return 1
        return 0
    directory.mkdir(parents=True, exist_ok=True)
    for name in stale:
        path = directory / name
        if name in rendered:
            path.write_text(rendered[name], encoding="utf-8", newline="\n")
            print(f"wrote {path}")
        else:
            path.unlink()
            print(f"removed {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
