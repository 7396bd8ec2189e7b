"""The C allocator's settings for a long-running worker (glibc only; elsewhere nothing).

glibc serves a request of 128 KB or more from its own mapping, returned to the system
when freed, but raises that threshold to the size of each such block freed, up to
32 MB. A worker frees fetch responses (~1 MB), producer batches (up to 512 KB) and
changelog reads all the time, so after the first few they came from the heap, where
free space between live blocks stays resident: at 100,000 customers glibc held 34 MB
free (`mallinfo2`). A fixed threshold keeps them in mappings (docs/decisions.md 140).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

#: bytes from which a request gets its own mapping (glibc's initial default)
MMAP_THRESHOLD = 128 * 1024
#: mallopt's parameter number for the threshold (malloc.h)
M_MMAP_THRESHOLD = -3
#: set by an operator, glibc's own variable wins
GLIBC_VARIABLE = "MALLOC_MMAP_THRESHOLD_"


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold, unless MALLOC_MMAP_THRESHOLD_ is set: True when set."""
    if GLIBC_VARIABLE in os.environ or platform.libc_ver()[0] != "glibc":
        return False
    name = ctypes.util.find_library("c")
    if name is None:  # pragma: no cover - glibc without a findable libc
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # pragma: no cover
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
