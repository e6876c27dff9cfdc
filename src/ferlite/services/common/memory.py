"""glibc malloc settings for processes that move face crops: keep freed buffers for reuse.

A Classify call carries a few hundred KB of crops (8 faces of 128 px: 393 KB) through several
buffers: gRPC's receive slices, the request bytes, the parsed message, the batch. With glibc's
defaults each of those large blocks goes back to the kernel when freed (above the dynamic mmap
threshold, or trimmed off a thread arena's top) and comes back as fresh zeroed pages on the next
call: ~100 page faults per buffer, every call. On this 2-core VM that doubled a gRPC call of that
size (a bare Python echo: 0.9 ms with the defaults, 0.4 ms with the thresholds below).

Raising the mmap threshold to 4 MiB and the trim threshold to 16 MiB keeps such blocks in the
heap for the next call. The cost is memory a process keeps after a burst: up to the trim
threshold of free heap per arena, instead of returning it at once.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger("ferlite.memory")

MMAP_THRESHOLD = 4 << 20   # blocks below this come from the heap, not a fresh mmap
TRIM_THRESHOLD = 16 << 20  # free heap kept at an arena's top before returning it to the kernel
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
TUNABLES = f"glibc.malloc.mmap_threshold={MMAP_THRESHOLD}:glibc.malloc.trim_threshold={TRIM_THRESHOLD}"

_done = False


def _user_set() -> bool:
    """The operator set these thresholds themselves (GLIBC_TUNABLES): theirs win."""
    own = os.environ.get("GLIBC_TUNABLES", "")
    return "malloc.mmap_threshold" in own or "malloc.trim_threshold" in own


def tune_malloc() -> bool:
    """Apply the thresholds to this process (once; a no-op off glibc). True when applied."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux") or _user_set():
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    if not ok:
        log.warning("mallopt refused the malloc thresholds; large buffers are not reused")
    _done = ok
    return ok


def tuned_environment(env: dict[str, str]) -> dict[str, str]:
    """`env` for a child process (Triton, its Python-backend stubs) with the same thresholds,
    set through GLIBC_TUNABLES, which glibc reads at start-up; an operator's own win."""
    own = env.get("GLIBC_TUNABLES", "")
    if "malloc.mmap_threshold" in own or "malloc.trim_threshold" in own:
        return env
    return {**env, "GLIBC_TUNABLES": f"{own}:{TUNABLES}" if own else TUNABLES}
