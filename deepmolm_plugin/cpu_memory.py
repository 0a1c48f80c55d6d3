"""CPU inference: keep freed memory in the process for the next tensor (glibc malloc).

PyTorch's CPU allocator takes every tensor from malloc and gives it back when the tensor
dies. glibc hands requests above its mmap threshold (128 KiB at start, raised as mapped
blocks are freed, at most 32 MiB) to fresh mmaps, and returns free heap beyond its trim
threshold to the kernel on `free`. Memory that went back comes again as fresh pages the
kernel zeroes on first touch: one 1024 px DeepEncoder forward allocates and frees about
4 GB of activations, and on a 2-core AVX2 EPYC a fresh 50 MB tensor took 4.1 ms to fill
against 2.1 ms for a reused one; the whole forward ran 3-9 % faster with the settings
below (6.95-7.2 s against 7.2-7.6 s, alternating processes).

`keep_freed_memory` fixes the mmap threshold at glibc's maximum (32 MiB: smaller blocks
come from the heap and are reused) and raises the trim threshold to 1 GiB (the heap keeps
up to that much freed memory instead of returning it). The cost: the process's resident
memory stays near its peak. This is what PyTorch's own CPU launcher
(`torch.backends.xeon.run_cpu`) does by preloading jemalloc or tcmalloc; here it needs no
preload and no environment variable. The inference loader (`model.loading`) calls it for
CPU models, and the encoder benchmark for both implementations it compares. Elsewhere
(not glibc, not Linux) it does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

logger = logging.getLogger(__name__)

# mallopt parameter numbers, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20  # glibc's largest: HEAP_MAX_SIZE / 2 on 64-bit
TRIM_THRESHOLD = 1 << 30

_state: dict = {}  # "applied": bool, once per process


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds as described above, once per process.

    Returns whether they are in effect (False where the C library is not glibc)."""
    if "applied" in _state:
        return _state["applied"]
    applied = False
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        # mallopt returns 1 on success, 0 when glibc refuses the value
        applied = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    if applied:
        logger.info("CPU memory: freed blocks kept for reuse (glibc mmap threshold %d MiB, trim threshold %d MiB)",
                    MMAP_THRESHOLD >> 20, TRIM_THRESHOLD >> 20)
    else:
        logger.info("CPU memory: C library is not glibc (%s %s); allocator settings left as they are",
                    platform.system(), platform.libc_ver()[0] or "unknown libc")
    _state["applied"] = applied
    return applied
