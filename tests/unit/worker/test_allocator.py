"""glibc's mmap threshold, fixed for the worker."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from tierstream.worker import allocator

GLIBC = platform.libc_ver()[0] == "glibc"

#: a child that frees a 1 MB block, then allocates eight more and frees them: with glibc's
#: sliding threshold they come from the heap, between small live blocks, and stay there as
#: free space (resident once written)
PROBE = """
import ctypes, sys
from tierstream.worker import allocator
if sys.argv[1] == "fixed":
    assert allocator.fix_mmap_threshold()
libc = ctypes.CDLL("libc.so.6")
class M(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = M
first = bytearray(1 << 20)
del first  # freed: glibc raises its threshold to 1 MB (sliding)
blocks, keep = [], []
for i in range(8):
    blocks.append(bytearray(1 << 20))
    keep.append(bytearray(100_000))  # a live heap block after each: the heap cannot shrink
del blocks
print(libc.mallinfo2().fordblks)
"""


def _free_heap_bytes(mode: str) -> int:
    env = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=env, check=True
    )
    return int(done.stdout.strip())


@pytest.mark.skipif(not GLIBC, reason="glibc's allocator only")
def test_a_fixed_threshold_keeps_large_freed_blocks_out_of_the_heap() -> None:
    assert _free_heap_bytes("sliding") >= 6 << 20, "the probe shows glibc's sliding threshold"
    assert _free_heap_bytes("fixed") < 1 << 20


@pytest.mark.skipif(not GLIBC, reason="glibc's allocator only")
def test_an_operators_glibc_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(allocator.GLIBC_VARIABLE, "65536")
    assert allocator.fix_mmap_threshold() is False
