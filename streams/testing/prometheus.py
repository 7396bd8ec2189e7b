"""Prometheus text exposition, read the way the tests, bench and demo read a worker's /metrics."""

from __future__ import annotations

import contextlib
import urllib.request


def scrape(port: int, timeout: float = 2.0, host: str = "127.0.0.1") -> str:
    """The /metrics text of a worker; empty when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout) as r:
            return str(r.read().decode())
    except OSError:
        return ""


def samples(text: str) -> dict[str, float]:
    """Every sample by name and label set (`name{labels}` -> value); comments skipped."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


def total(found: dict[str, float], prefix: str) -> float:
    """Sum of the samples whose name (with labels) starts with `prefix`."""
    return sum(v for k, v in found.items() if k.startswith(prefix))
