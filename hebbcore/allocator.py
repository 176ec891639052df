"""Process-wide tuning of glibc's ``malloc`` for training loops: freed step buffers are kept for the next step.

A training step allocates and frees the same large arrays every batch: layer responses, patch buffers,
pooling outputs (numpy and torch-CPU both allocate through ``malloc``). By default glibc serves any block
above its *mmap threshold* with a fresh ``mmap`` and unmaps it on ``free``; the threshold adapts upwards
as blocks are freed, but never above 32 MiB, and freed memory at the top of the heap is handed back to
the kernel above a *trim threshold* (twice the mmap threshold). The next step then touches every page of its
arrays again, one page fault per 4 KiB page. On the 2-core VM this was measured on, a batch-64 Hebbian step of
the paper's net page-faulted ~5,000 (numpy) and 15,000–32,000 (torch) times; without them the step took
13–16 % (numpy) and 20–34 % (torch) less time (``benchmarks/step_faults.py``, in commit c57f730).

:func:`tune_malloc` fixes both thresholds (``mallopt``) so that blocks up to
:data:`MMAP_THRESHOLD_BYTES` come from the heap and up to :data:`TRIM_THRESHOLD_BYTES` of free heap is
kept for reuse. The cost is that the process keeps its peak heap instead of returning it between steps.

The library never calls it on import (importing hebbcore changes no process-wide state); the
``hebbcore run``, ``tune`` (its first worker), ``evaluate`` and ``bench`` and ``python -m hebbcore.experiments``
commands call it at start (for inference too: without it, the varying torch-CPU activations of a long evaluation
fragment the heap, which then grows without bound),
and a script can call it too. ``HEBBCORE_MALLOC_TUNING=0`` turns it off. It does nothing where the C
library is not glibc (macOS, Windows, musl).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: Blocks up to this size are served from the heap (and reused), not by a fresh ``mmap``.
MMAP_THRESHOLD_BYTES = 128 << 20
#: Free memory at the top of the heap kept for reuse instead of being returned to the kernel.
TRIM_THRESHOLD_BYTES = 1 << 30

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
ENV_VAR = "HEBBCORE_MALLOC_TUNING"

_applied: dict | None = None


def _glibc():
    """glibc's ``libc``, or None where the C library is another one."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()  # only glibc has it (musl does not)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        return libc
    except (OSError, AttributeError):
        return None


def tune_malloc(mmap_threshold: int = MMAP_THRESHOLD_BYTES, trim_threshold: int = TRIM_THRESHOLD_BYTES) -> dict:
    """Fix glibc's mmap and trim thresholds for this process; returns what was done.

    The result (also recorded by ``hebbcore bench`` in its JSON) is ``{"applied": bool, "reason": str}``
    plus both thresholds when applied. The mmap threshold is set first: setting only the trim threshold
    also switches off glibc's adaptive mmap threshold and would leave it at 128 KiB.
    """
    global _applied
    if not (0 < mmap_threshold < 1 << 31 and 0 < trim_threshold < 1 << 31):
        raise ValueError("tune_malloc: thresholds must be positive and below 2 GiB (mallopt takes an int)")
    if os.environ.get(ENV_VAR, "1").strip().lower() in ("0", "false", "no", "off"):
        result = {"applied": False, "reason": f"{ENV_VAR}={os.environ[ENV_VAR]}"}
    elif (libc := _glibc()) is None:
        result = {"applied": False, "reason": "the C library is not glibc"}
    elif not libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold):
        result = {"applied": False, "reason": f"mallopt refused an mmap threshold of {mmap_threshold} bytes"}
    else:
        libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold)
        result = {
            "applied": True,
            "reason": "glibc",
            "mmap_threshold_bytes": mmap_threshold,
            "trim_threshold_bytes": trim_threshold,
        }
    if _applied is None or not _applied["applied"]:  # a later refusal does not undo what was applied
        _applied = result
    return dict(result)


def malloc_tuning() -> dict:
    """What :func:`tune_malloc` did in this process: its result (the applied one, if any call applied it)."""
    return dict(_applied) if _applied else {"applied": False, "reason": "tune_malloc() not called"}
